"""The shared Graph service on msgraph-sdk + azure-identity (app-only and per-user clients)."""
