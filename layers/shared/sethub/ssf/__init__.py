"""sethub as an OpenID Shared Signals Framework 1.0 transmitter.

Receivers (OAuth clients) discover the transmitter, create their own streams and get
every accepted identity event whose type their stream asked for as a SET of their own,
by push (RFC 8935) or poll (RFC 8936). The modules:

- ``model``: the stream configuration, its validation (SSF 1.0 section 8) and metadata;
- ``auth``: receivers' client credentials and bearer access tokens (scopes ``ssf.read``,
  ``ssf.manage``);
- ``service``: the management, status, subject, verification and poll operations;
- ``sets``: SSF SETs (one event each, the stream's ``aud``, top-level ``sub_id``);
- ``keys``: the RS256 signing key (RSA 2048, wrapped under the stack's data key);
- ``routing``: the dispatcher's side: events to streams, by an index on event type;
- ``store``: the DynamoDB adapter for all of the above.

Nothing here builds an AWS client at import time.
"""
