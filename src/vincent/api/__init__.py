"""HTTP front end: routes, API-key auth, the Vincent envelope and the error mapping."""
