from nba_dpo.sql.extract import extract_reasoning, extract_sql


def test_sql_line_format():
    c = "Reasoning: Read conference from teams.\nSQL: SELECT conference FROM teams WHERE full_name = 'Utah Jazz';"
    assert extract_sql(c) == "SELECT conference FROM teams WHERE full_name = 'Utah Jazz'"
    assert extract_reasoning(c) == "Read conference from teams."


def test_semicolon_inside_quotes_and_trailing_text():
    c = "SQL: SELECT a FROM t WHERE n = 'x;y'; and then some chatter"
    assert extract_sql(c) == "SELECT a FROM t WHERE n = 'x;y'"


def test_fenced_block():
    c = "Here is the query:\n```sql\nSELECT COUNT(*)\nFROM games\n```\nIt counts games."
    assert extract_sql(c) == "SELECT COUNT(*)\nFROM games"
    assert extract_sql("```\nSELECT 1;\n```") == "SELECT 1"


def test_bare_sql():
    assert extract_sql("select full_name from teams") == "select full_name from teams"
    assert extract_sql("The answer is: WITH x AS (SELECT 1) SELECT * FROM x;") == "WITH x AS (SELECT 1) SELECT * FROM x"


def test_nothing_to_extract():
    assert extract_sql("") == ""
    assert extract_sql("I don't know.") == ""
    assert extract_reasoning("SQL: SELECT 1") == ""
