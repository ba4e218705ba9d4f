"""The Slack bot: one `/modeldeck` command and the buttons on modeldeck's messages."""
