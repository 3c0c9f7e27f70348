"""The docked panels (images, queue, problems) and the status bar."""
