// What tells the operator, by the action group (e-mail when alertEmail is set), that something
// is wrong before billing day does:
//   - three log alerts on the JSON lines the app writes (sessions/logs.py declares the events
//     and fields; tests/unit/test_infra_static.py holds every query to them): sessions
//     rejected, pushes refused or answered 503 (and background pushes given up), and silence;
//   - a standard availability test of GET /api/health from several regions, with its alert;
//   - a metric alert on failed executions and 5xx answers.
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

// Pushes taken: stored at once (200) or accepted to finish in the background (202). None in the
// window means the feed stopped: a key rotated on one side only, an endpoint moved, an outage.
var acceptedPushesQuery = '''
traces
| where message has "event"
| extend e = parse_json(message)
| extend event_name = tostring(e.event), status = toint(e.status)
| where event_name == "push" and status in (200, 202)
| project timestamp, status, push_id = tostring(e.push_id)
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
    description: 'No push was answered 200 or 202 for ${silenceAlertHours} hours. ChargePilot pushes hourly: check the key on both sides, the endpoint URL ChargePilot uses, and the availability test (docs/deploy.md, Alerts).'
    severity: 1
    enabled: true
    evaluationFrequency: 'PT1H'
    windowSize: 'PT${silenceAlertHours}H'
    scopes: [
      applicationInsights.id
    ]
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: acceptedPushesQuery
          timeAggregation: 'Count'
          operator: 'LessThan'
          threshold: 1
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

resource availabilityAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${alertNamePrefix}-health-unavailable'
  location: 'global'
  tags: tags
  properties: {
    description: 'GET /api/health failed from at least two test locations in the last five minutes: the receiver is down, unreachable, or answers 503 (its answer says why).'
    severity: 1
    enabled: true
    scopes: [
      availabilityTest.id
      applicationInsights.id
    ]
    evaluationFrequency: 'PT1M'
    windowSize: 'PT5M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.WebtestLocationAvailabilityCriteria'
      webTestId: availabilityTest.id
      componentId: applicationInsights.id
      failedLocationCount: 2
    }
    autoMitigate: true
    actions: [
      {
        actionGroupId: actionGroupId
      }
    ]
  }
}

// Every execution that failed, HTTP or background (queue), as Application Insights counts
// them, less the client errors that are answers rather than failures (a refused push has its
// own alert above; 401 and 404 are what the internet sends to any public endpoint).
resource failedExecutionsAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${alertNamePrefix}-failed-executions'
  location: 'global'
  tags: tags
  properties: {
    description: 'A function execution failed or answered 5xx in the last 15 minutes (Application Insights, Failures, shows which and why).'
    severity: 2
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'failed-executions'
          metricNamespace: 'microsoft.insights/components'
          metricName: 'requests/failed'
          dimensions: [
            {
              name: 'request/resultCode'
              operator: 'Exclude'
              values: [
                '400'
                '401'
                '404'
                '405'
                '413'
                '415'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Count'
        }
      ]
    }
    autoMitigate: true
    actions: [
      {
        actionGroupId: actionGroupId
      }
    ]
  }
}
