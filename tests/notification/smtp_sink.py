"""A tiny SMTP server on loopback that records messages (and can refuse the first few).

Written on asyncio streams instead of adding aiosmtpd: the email channel only needs a real
SMTP conversation (EHLO, MAIL, RCPT, DATA, QUIT) to talk to, plus a switch to simulate a
failing server, and that is forty lines without a new dependency.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class SmtpSink:
    refuse_first: int = 0
    messages: list[str] = field(default_factory=list)
    refused: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> SmtpSink:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(line: str) -> None:
            writer.write(f"{line}\r\n".encode())
            await writer.drain()

        await reply("220 sink ready")
        try:
            while line := (await reader.readline()).decode().strip():
                verb = line.split(" ", 1)[0].upper()
                if verb == "DATA":
                    await reply("354 go ahead")
                    data = []
                    while (chunk := (await reader.readline()).decode()) not in (".\r\n", ""):
                        data.append(chunk)
                    if self.refused < self.refuse_first:
                        self.refused += 1
                        await reply("451 try again later")
                    else:
                        self.messages.append("".join(data))
                        await reply("250 queued")
                elif verb == "QUIT":
                    await reply("221 bye")
                    break
                else:  # EHLO, HELO, MAIL, RCPT, RSET, NOOP
                    await reply("250 ok")
        finally:
            writer.close()
