"""Slack front end (slack-bolt): translates Slack requests into core use cases."""
