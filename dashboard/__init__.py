"""The Streamlit dashboard: `modeldeck dashboard` runs app.py; one file per page in views/."""
