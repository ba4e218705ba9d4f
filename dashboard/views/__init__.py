"""One Streamlit page per file, run by st.navigation (see ../app.py)."""
