// What tells the operator, by the action group (e-mail when alertEmail is set), that something
// is wrong before billing day does:
//   - log alerts on the JSON lines the app writes (sessions/logs.py declares the events and
//     fields; tests/unit/test_infra_static.py holds every query to them): sessions rejected,
//     pushes refused or answered 503 (and background pushes given up), silence, and reads of
//     billing systems refused;
//   - a standard availability test of GET /api/health from several regions, with its alert;
//   - an alert on failed executions and 5xx answers.
// Silence and health page only once ChargePilot has started pushing: a new deployment answers
// 503 on purpose until its key is in the vault and its code is published.
// In Application Insights each log line is a trace whose message is the JSON object.

param location string
param tags object
param applicationInsightsName string
param actionGroupId string

@description('Prefix of the alert rule names.')
param alertNamePrefix string

param availabilityTestName string

@description('https URL of GET /api/health (answers without a key, shows no data).')
param healthUrl string

@minLength(3)
@description('Application Insights availability test location ids.')
param availabilityTestLocations array

@minValue(1)
@maxValue(48)
@description('Hours without an accepted push before the silence alert fires.')
param silenceAlertHours int

// Sessions rejected by validation or plausibility in the last hour, over live pushes and those
// finished in the background: each push line carries the count in `rejected`.
var rejectedSessionsQuery = '''
traces
| where message has "event"
| extend e = parse_json(message)
| extend event_name = tostring(e.event), rejected = toint(e.rejected)
| where event_name in ("push", "push_finished") and rejected > 0
| project timestamp, event_name, push_id = tostring(e.push_id), received = toint(e.received), rejected
'''

// Pushes answered with an error (400, 413 and 415 refused, 503 unavailable or not configured),
// and background pushes given up after their last attempt (in the poison queue). A 401 alone is
// left out: anyone on the internet can send one; a key that no longer matches ChargePilot's
// shows as silence below.
var refusedPushesQuery = '''
traces
| where message has "event"
| extend e = parse_json(message)
| extend event_name = tostring(e.event), status = toint(e.status), outcome = tostring(e.outcome)
| where (event_name == "push" and status >= 400 and status != 401) or (event_name == "push_finished" and outcome == "poisoned")
| project timestamp, event_name, status, outcome, reason = tostring(e.reason), push_id = tostring(e.push_id)
'''

// The silence rule looks back two days (overrideQueryTimeRange below) and fires only once the feed
// has started: a push other than a 401 in those two days (a 401 alone is anyone on the internet),
// and none taken (200 or 202) in the last {silenceAlertHours} hours, which replace() fills in. A new
// deployment, before ChargePilot's first push, stays quiet; a feed silent for longer than the two
// days leaves the lookback and the alert resolves (docs/deploy.md says what watches beyond it).
var silenceQueryTemplate = '''
traces
| where message has "event"
| extend e = parse_json(message)
| extend event_name = tostring(e.event), status = toint(e.status)
| where event_name == "push" and status != 401
| summarize pushes = count(), last_taken = maxif(timestamp, status in (200, 202))
| where pushes > 0 and (isnull(last_taken) or last_taken < ago({silenceAlertHours}h))
| project pushes, last_taken
'''
var silenceQuery = replace(silenceQueryTemplate, '{silenceAlertHours}', string(silenceAlertHours))

// Reads by billing systems (GET /api/sessions) that failed: a bad parameter (400: its integration
// is broken) or 503 (reading not configured, or storage unavailable). A 401 alone is left out.
var refusedReadsQuery = '''
traces
| where message has "event"
| extend e = parse_json(message)
| extend event_name = tostring(e.event), status = toint(e.status)
| where event_name == "read" and status in (400, 503)
| project timestamp, status, reason = tostring(e.reason)
'''

// GET /api/health failing from two locations or more in the last five minutes, once the feed has
// started (as above). Before the first push a new deployment answers 503 on purpose (no key in the
// vault yet, no code published): that pages nobody.
var healthUnavailableQuery = '''
let started = toscalar(traces
    | where message has "event"
    | extend e = parse_json(message)
    | extend event_name = tostring(e.event), status = toint(e.status)
    | where event_name == "push" and status != 401
    | count) > 0;
availabilityResults
| where timestamp > ago(5m)
| summarize failed_locations = dcountif(location, not(tobool(success))), locations = dcount(location)
| where started and failed_locations >= 2
'''

// Every execution that failed, HTTP or background (the Functions host records both as requests),
// less the client errors that are answers rather than failures (a refused push has its own alert
// above; 401 and 404 are what the internet sends to any public endpoint), and less the
// availability test's own probes, which the health rule watches.
var failedExecutionsQuery = '''
requests
| where not(tobool(success)) and resultCode !in ("400", "401", "404", "405", "413", "415")
| where isempty(operation_SyntheticSource)
| project timestamp, name, resultCode, operation_Id
'''

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource rejectedSessionsAlert 'Microsoft.Insights/scheduledQueryRules@2022-08-01-preview' = {
  name: '${alertNamePrefix}-rejected-sessions'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ChargePilot: sessions rejected in the last hour'
    description: 'At least one pushed session was rejected (quarantined, not stored) in the last hour. `python -m sessions rejected` lists them with their reasons (docs/deploy.md, Alerts).'
    severity: 2
    enabled: true
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    scopes: [
      applicationInsights.id
    ]
    // A new component may hold no telemetry yet when the rule is created.
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: rejectedSessionsQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroupId
      ]
    }
  }
}

resource refusedPushesAlert 'Microsoft.Insights/scheduledQueryRules@2022-08-01-preview' = {
  name: '${alertNamePrefix}-refused-pushes'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ChargePilot: pushes refused or answered 503'
    description: 'A push was answered 400, 413, 415 or 503 in the last 15 minutes, or a push finished in the background was given up (poison queue). The alert lists status, outcome and reason (docs/deploy.md, Alerts).'
    severity: 1
    enabled: true
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    scopes: [
      applicationInsights.id
    ]
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: refusedPushesQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroupId
      ]
    }
  }
}

resource silenceAlert 'Microsoft.Insights/scheduledQueryRules@2022-08-01-preview' = {
  name: '${alertNamePrefix}-no-pushes'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ChargePilot: no push taken for ${silenceAlertHours} hours'
    description: 'ChargePilot has pushed in the last two days, but no push was answered 200 or 202 for ${silenceAlertHours} hours. ChargePilot pushes hourly: check the key on both sides, the endpoint URL ChargePilot uses, and the availability test (docs/deploy.md, Alerts).'
    severity: 1
    enabled: true
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    overrideQueryTimeRange: 'P2D'
    scopes: [
      applicationInsights.id
    ]
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: silenceQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    // Resolves by itself once pushes arrive again.
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroupId
      ]
    }
  }
}

// GET /api/health every five minutes from each location; the app answers 200 without a key
// when its settings, key and storage are in order, 503 otherwise.
resource availabilityTest 'Microsoft.Insights/webtests@2022-06-15' = {
  name: availabilityTestName
  location: location
  // Application Insights lists a test under the component this tag links it to.
  tags: union(tags, {
    'hidden-link:${applicationInsights.id}': 'Resource'
  })
  kind: 'standard'
  properties: {
    SyntheticMonitorId: availabilityTestName
    Name: 'ChargePilot receiver /api/health'
    Description: 'The receiver answers 200 on /api/health.'
    Enabled: true
    Frequency: 300
    Timeout: 30
    Kind: 'standard'
    RetryEnabled: true
    Locations: [for locationId in availabilityTestLocations: {
      Id: locationId
    }]
    Request: {
      RequestUrl: healthUrl
      HttpVerb: 'GET'
      ParseDependentRequests: false
    }
    ValidationRules: {
      ExpectedHttpStatusCode: 200
      IgnoreHttpStatusCode: false
      SSLCheck: true
      SSLCertRemainingLifetimeCheck: 7
    }
  }
}

resource availabilityAlert 'Microsoft.Insights/scheduledQueryRules@2022-08-01-preview' = {
  name: '${alertNamePrefix}-health-unavailable'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ChargePilot: /api/health failing'
    description: 'GET /api/health failed from at least two test locations in the last five minutes, after ChargePilot has started pushing: the receiver is down, unreachable, or answers 503 (its answer says why).'
    severity: 1
    enabled: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    overrideQueryTimeRange: 'P2D'
    scopes: [
      applicationInsights.id
    ]
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: healthUnavailableQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroupId
      ]
    }
  }
}

resource refusedReadsAlert 'Microsoft.Insights/scheduledQueryRules@2022-08-01-preview' = {
  name: '${alertNamePrefix}-refused-reads'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ChargePilot: billing-system reads refused or answered 503'
    description: 'A read of GET /api/sessions was answered 400 (a bad parameter: the billing system\'s integration) or 503 (reading not configured, or storage unavailable) in the last hour. The alert lists status and reason (docs/billing-systems.md).'
    severity: 3
    enabled: true
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    scopes: [
      applicationInsights.id
    ]
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: refusedReadsQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroupId
      ]
    }
  }
}

resource failedExecutionsAlert 'Microsoft.Insights/scheduledQueryRules@2022-08-01-preview' = {
  name: '${alertNamePrefix}-failed-executions'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ChargePilot: failed executions'
    description: 'A function execution failed or answered 5xx in the last 15 minutes (Application Insights, Failures, shows which and why). The availability test is left out: /api/health has its own alert.'
    severity: 2
    enabled: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    scopes: [
      applicationInsights.id
    ]
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: failedExecutionsQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroupId
      ]
    }
  }
}
