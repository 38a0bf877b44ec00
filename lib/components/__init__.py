"""One ComponentResource per concern; `lib.tap_stack.TapStack` composes them."""
