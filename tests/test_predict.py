"""python -m linreg.predict's input beyond test_reliability's and test_adversary's."""

from linreg import predict


# predict ---------------------------------------------------------------------------------

def test_predict_skips_blank_and_whitespace_only_lines():
    assert predict.read_rows(["1,2\n", "\n", "   \n", " , \n", "3,4\n"]) == [(1.0, 2.0), (3.0, 4.0)]
