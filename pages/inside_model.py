"""Inside the model (coming next): the latents and where the bits go."""
import streamlit as st

st.title("Inside the model")
st.caption("What the autoencoder keeps, and where it spends its bits.")
st.info(
    "Coming next: the multi-resolution latents of your image, a bits-per-pixel heatmap showing where the "
    "bits go, and the rate of each latent channel.",
    icon=":material/construction:",
)
