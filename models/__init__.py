"""Models: search, inspect, download and manage Hugging Face models (the engine behind the Models screen).

    models.hub       endpoint(), cache_dir(), resolve_token(), search(), info(), fetch_json()
    models.download  plan(), download(), select_files(), Progress, DownloadPlan
    models.cache     list_cache(), remove(), find(), CachedModel
    models.auth      login()
    models.errors    HubError(kind, message, hint)

Importing these modules imports neither huggingface_hub nor torch nor Textual; huggingface_hub is loaded on
first use. Every function that talks to the network raises HubError with the fix in words.
"""
