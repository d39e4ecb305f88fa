// Package layout holds no code: its test enforces the import rules of the
// data flow (ingest → {recorder, viewer, alerts}; registry a leaf; siblings
// never import each other; nothing imports cmd) and the naming rules of
// packages.
package layout
