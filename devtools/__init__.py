"""Development tooling (Azurite launcher, benchmarks): never deployed to Azure."""
