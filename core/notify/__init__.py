"""Delivery channels (Slack Web API, webhook) draining a durable outbox."""
