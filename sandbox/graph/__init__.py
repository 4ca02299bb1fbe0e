"""Microsoft Graph v1.0 and beta stand-ins."""
