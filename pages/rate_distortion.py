"""Rate-distortion (coming next): every codec's curve for your image, and BD-rate against JPEG."""
import streamlit as st

st.title("Rate-distortion")
st.caption("How many bits each codec needs for each level of quality.")
st.info(
    "Coming next: interactive charts of bits per pixel against PSNR and MS-SSIM for your image or a set "
    "of images, one curve per codec with the Compare page's operating point marked, and a BD-rate table "
    "against JPEG.",
    icon=":material/construction:",
)
