from coursekit.french import NBSP, fr_fixed, fr_int, fr_num, fr_pct


def test_french_numbers():
    assert fr_num(0.041842) == "0,04184" and fr_num(2.0) == "2"
    assert fr_pct(0.18) == "18,00\u00a0%" and fr_pct(0.0035, signed=True) == "+0,35\u00a0%"
    assert fr_int(60000) == "60\u00a0000"


def test_fixed_decimals_and_signs():
    assert fr_fixed(2.3) == "2,30" and fr_fixed(-0.125, 1) == "-0,1"
    assert fr_fixed(0.5, 1, signed=True) == "+0,5"
    assert fr_int(1234567.9) == f"1{NBSP}234{NBSP}567"  # truncated, not rounded
