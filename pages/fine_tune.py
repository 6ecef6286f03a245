"""Fine-tune (coming next): adapt the learned codec to a folder of your own images."""
import streamlit as st

st.title("Fine-tune")
st.caption("Teach the codec your kind of pictures.")
st.info(
    "Coming next: fine-tune the learned codec on your own images in a background job that survives page "
    "reloads, with live loss, bpp and PSNR curves, cancel and resume; the result becomes named weights in "
    "the model picker.",
    icon=":material/construction:",
)
