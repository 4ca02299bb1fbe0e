"""The Slack and Teams app manifest templates and icons (data only; ``elevate manifest``
renders them).  A package so that they ship inside the wheel."""
