"""The Textual app: screens, widgets and the controller that feeds them from a backend.

Textual draws a frame on a timer paced at TEXTUAL_FPS (60 by default), and a frame that
overruns its period (a chat write while a reply streams takes 5-10 ms on 2 cores) pushes the
next one past the following tick: at 120 frames/s a key press handled just after such a frame
waited 8-17 ms more for its own. At 500 that wait is 2-4 ms. The cap does not add frames
where nothing changed: the chat is written 20 times a second whatever it is. Set before
Textual is imported, and only where the user has not chosen a rate.
"""

import os

os.environ.setdefault("TEXTUAL_FPS", "500")
