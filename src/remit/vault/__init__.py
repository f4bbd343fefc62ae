"""The card data vault: the only part of remit that ever holds a card number or a CVC."""
