"""What the platform holds about one person: found and exported on request (GDPR Art. 15)."""
