"""A Twilio-compatible Messaging API: existing Twilio code sends through Nexus by
changing only its base URL. See docs/moving-from-twilio.md.

- `management.router` (under /api/v1): Twilio-style credentials of an org.
- `routes.router` (at the root): `/2010-04-01/Accounts/{AccountSid}/Messages…`.
- `callbacks`: signed status callbacks, queued from VAS's message events, sent by a job.
"""
