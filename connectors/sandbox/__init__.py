"""Local, stateful stand-ins for the ServiceNow and Jira HTTP APIs, served on loopback.

The connectors talk to them through pysnow and the jira library exactly as they
would to the real services. ``http.py`` holds the shared machinery (routing,
auth, fault injection, request log); each vendor has its own module.
"""

from __future__ import annotations
