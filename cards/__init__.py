"""Pure card builders: Adaptive Cards (Teams), Block Kit (Slack) and the shared action contract."""
