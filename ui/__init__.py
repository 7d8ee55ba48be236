"""Shared Streamlit helpers of OPTICAL Explorer (the only Streamlit code besides app.py and
pages/). Import what you need from :mod:`ui.common`::

    from ui.common import page_setup, model_picker, get_encoder, embed, show_error

``optical_core`` never imports this package; everything here is presentation glue.
"""
