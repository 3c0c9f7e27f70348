"""The canvas: scene and view, node items (painting, inline editors), edges, reroutes and
groups, wire dragging, the node search popup, auto-layout and the empty-canvas hint."""
