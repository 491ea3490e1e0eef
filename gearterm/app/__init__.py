"""The Textual app: screens, widgets and the controller that feeds them from a backend."""
