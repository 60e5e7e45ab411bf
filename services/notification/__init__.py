"""The notification service: notifications from domain events, listed, marked read, streamed."""
