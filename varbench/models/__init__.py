"""varbench's own VAR (Tian et al., NeurIPS 2024), pure torch and IO-free: the multi-scale VQVAE (``vqvae``, ``quant``),
the AdaLN transformer (``blocks``, ``var``), the next-scale sampling loop (``sample``) and checkpoint conversion
(``convert``).  Imports nothing but torch and ``varbench.errors``."""
