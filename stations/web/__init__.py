"""The operator dashboard: pages, their fragments, the live socket, and the registry of remote
actions that the dashboard's forms and the API's command endpoints are generated from."""
