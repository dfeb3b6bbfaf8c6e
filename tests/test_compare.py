"""Both result-comparison semantics, case by case."""
from nba_dpo.sql.compare import bird_equal, exact_match, has_order_by, normalize_sql, spider_equal


def test_column_permutation():
    gold = [("Boston Celtics", 60), ("Denver Nuggets", 55)]
    pred = [(60, "Boston Celtics"), (55, "Denver Nuggets")]
    assert spider_equal(pred, gold, ordered=False)
    assert spider_equal(pred, gold, ordered=True)
    assert not bird_equal(pred, gold)  # BIRD compares rows as they are


def test_duplicates():
    gold = [(1,), (1,), (2,)]
    assert not spider_equal([(1,), (2,)], gold, ordered=False)       # bag: counts matter
    assert not spider_equal([(1,), (2,), (2,)], gold, ordered=False)
    assert bird_equal([(1,), (2,)], gold)                            # set: they do not
    assert bird_equal([(2,), (1,), (2,)], gold)


def test_order_only_matters_with_order_by():
    gold = [("a",), ("b",), ("c",)]
    pred = [("c",), ("a",), ("b",)]
    assert spider_equal(pred, gold, ordered=False)
    assert not spider_equal(pred, gold, ordered=True)
    assert bird_equal(pred, gold)
    assert has_order_by("SELECT a FROM t ORDER BY a DESC LIMIT 3")
    assert not has_order_by("SELECT a FROM t")
    assert not has_order_by("SELECT a FROM (SELECT a FROM t ORDER BY a) x")  # only the outer query counts


def test_floats_and_ints():
    assert spider_equal([(1.0,)], [(1,)], ordered=False)
    assert bird_equal([(1.0,)], [(1,)])
    assert not spider_equal([(1.0000001,)], [(1,)], ordered=False)  # exact values, no tolerance
    assert not bird_equal([(25.5,)], [(25.4,)])


def test_empty_results():
    assert spider_equal([], [], ordered=False)
    assert bird_equal([], [])
    assert not spider_equal([], [(1,)], ordered=False)
    assert not spider_equal([(1,)], [], ordered=False)
    assert not bird_equal([(None,)], [])


def test_nulls():
    assert spider_equal([(None,)], [(None,)], ordered=False)
    assert bird_equal([(None, 1)], [(None, 1)])
    assert not spider_equal([(None,)], [(0,)], ordered=False)
    assert not bird_equal([(None,)], [(0,)])


def test_shape_mismatch():
    assert not spider_equal([(1, 2)], [(1,)], ordered=False)   # extra column
    assert not spider_equal([(1,)], [(1,), (1,)], ordered=False)
    assert not bird_equal([(1, 2)], [(1,)])
    # same multiset per column but rows paired differently
    assert not spider_equal([(1, "b"), (2, "a")], [(1, "a"), (2, "b")], ordered=False)


def test_exact_match_normalises():
    assert exact_match("select  A.x from  T as a where a.Y=1 ;", "SELECT a.x FROM t AS a WHERE a.y = 1")
    assert exact_match("SELECT count(*) FROM games", "select COUNT(*) from games;")
    assert not exact_match("SELECT a FROM t WHERE b = 1", "SELECT a FROM t WHERE b = 2")
    assert normalize_sql("not sql at all ((") == "not sql at all (("
