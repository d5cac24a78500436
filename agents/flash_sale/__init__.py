"""Flash sales, stream side: payments confirm reservations, cancels release them."""
