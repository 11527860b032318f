"""Speech-to-term retrieval: window scheduling, encoders, the FAISS term index, the service."""
