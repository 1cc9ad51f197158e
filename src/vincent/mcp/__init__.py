"""The MCP server: the trade-manager and Polymarket tools for agents that speak MCP.

Every tool is one call of the REST API with the caller's own API key (``rest_client``), so
validation, errors, tenancy, policies and the audit log are the REST routes' own: there is no
second implementation. Two transports: streamable HTTP at ``/mcp`` on the API server
(``http_endpoint``: the REST calls go in process) and stdio (``vincent mcp``: over HTTP to a
server). ``tools`` declares the tools and the ``rules://`` resource.
"""
