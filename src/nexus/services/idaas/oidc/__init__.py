"""The OpenID Connect provider of IDaaS.

- `scopes`: what a scope value is (OIDC names or permission strings) and what it grants.
- `clients`: OAuth clients: identifiers, secrets, redirect URIs, client authentication.
- `browser`: the provider's own browser session (a sealed cookie naming a Session row),
  CSRF tokens and remembered consent.
- `authorize`: the authorization request (code + PKCE S256) and the codes it issues.
- `grants`: the token endpoint (authorization_code, refresh_token, client_credentials)
  and ID tokens.
- `introspection`: RFC 7662 introspection and RFC 7009 revocation, which agree.
- `pages`: the login, MFA, consent, error and logout pages (Jinja2, no scripts).
- `routes`: the public paths: /.well-known/openid-configuration and /oauth2/*.
"""
