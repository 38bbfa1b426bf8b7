"""Mail Rapport sends (the daily digest): one way out, configured by RAPPORT_SMTP_URL."""
