"""The content service: posts and comments, with events through the transactional outbox."""
