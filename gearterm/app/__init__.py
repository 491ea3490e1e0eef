"""The Textual app: screens, widgets and the controller that feeds them from a backend.

Textual draws at most 60 frames a second by default, so a key press can wait up to 17 ms for
its frame after it has been handled; 120 halves that. Set before Textual is imported, and only
where the user has not chosen a rate.
"""

import os

os.environ.setdefault("TEXTUAL_FPS", "120")
