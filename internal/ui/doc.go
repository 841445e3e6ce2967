// Package ui serves Orrery's built-in web UI: local users and sessions, the
// dashboards of each workspace, and a session-authenticated proxy to the
// workspace's query and Alertmanager APIs, with the pages embedded.
package ui
