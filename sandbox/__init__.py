"""A local stand-in tenant: Microsoft Graph, the Entra authority, the Teams channel and Slack.

Written from the public API documentation (see ``shared/spec``); it imports nothing of the
product.  Used by the tests and by ``elevate demo``.
"""
