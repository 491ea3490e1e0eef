"""The chat: user messages and replies, kept scrolled to the newest unless the user scrolls up."""

from __future__ import annotations

from collections.abc import Sequence

from textual.containers import VerticalScroll

from gearterm.app.widgets.assistant_message import AssistantMessage
from gearterm.app.widgets.user_message import UserMessage
from kernels.gear import Gear

KEEP_MESSAGES = 200  # older ones leave the screen (they stay in the history database)


class ChatView(VerticalScroll):
    def on_mount(self) -> None:
        self.anchor()

    async def add_user(self, text: str) -> UserMessage:
        message = UserMessage(text)
        await self._add(message)
        return message

    async def add_assistant(
        self, heading: str, *, tinted: bool, text: str = "", pieces: Sequence[tuple[str, Gear]] = ()
    ) -> AssistantMessage:
        message = AssistantMessage(heading, tinted=tinted, text=text, pieces=pieces)
        await self._add(message)
        return message

    async def clear(self) -> None:
        await self.remove_children()

    @property
    def replies(self) -> list[AssistantMessage]:
        return list(self.query_children(AssistantMessage))

    async def _add(self, message) -> None:
        await self.mount(message)
        if len(self.children) > KEEP_MESSAGES:
            await self.remove_children(self.children[: len(self.children) - KEEP_MESSAGES])
        self.anchor()
