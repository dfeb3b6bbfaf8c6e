"""Question intents: phrasings, gold SQL and a reasoning line per intent, across six difficulty levels.

Phrasing roles (by position in each list): the last phrasing is held out for test (neither SFT nor DPO sees it),
the one before it is seen only in the preference prompt pool, the rest are SFT training phrasings.
Placeholders: {player} {player1} {player2} {team} {season} {stat} {col} {position} {position_name}
{game_type} {game_type_name} {division} {state} {country} {year} {date} {n} {k}.
"""
from __future__ import annotations

from dataclasses import dataclass, field

DIFFICULTIES = ("lookup", "filter", "aggregate", "join", "group_order", "nested")

PLAYER_STATS = {"points": "points", "rebounds": "rebounds", "assists": "assists", "steals": "steals",
                "blocks": "blocks", "turnovers": "turnovers", "three-pointers made": "fg3m",
                "free throws made": "ftm"}
POSITIONS = {"guards": "G", "forwards": "F", "centers": "C"}
GAME_TYPES = {"regular season": "Regular Season", "playoff": "Playoffs"}
# Per-game averages above which only a handful of players stand in a season (for HAVING questions).
AVG_THRESHOLDS = {"points": (18, 20, 22, 24), "rebounds": (8, 9, 10), "assists": (6, 7, 8)}

# Joins spelled once so every intent writes them the same way.
PBS = ("FROM player_box_scores b JOIN players p ON p.player_id = b.player_id "
       "JOIN games g ON g.game_id = b.game_id")
TBS = ("FROM team_box_scores tb JOIN teams t ON t.team_id = tb.team_id "
       "JOIN games g ON g.game_id = tb.game_id")


@dataclass(frozen=True)
class Intent:
    id: str
    difficulty: str
    params: tuple[str, ...]
    phrasings: tuple[str, ...]
    sql: str
    reasoning: str
    numbers: dict = field(default_factory=dict)  # choices for {n}/{k}/{year}: name -> tuple, or per-stat dict

    def phrasing_role(self, idx: int) -> str:
        last = len(self.phrasings) - 1
        return "test" if idx == last else "pref" if idx == last - 1 else "train"


def _i(id, difficulty, params, phrasings, sql, reasoning, **numbers) -> Intent:
    return Intent(id, difficulty, tuple(params.split()), tuple(phrasings), sql, reasoning, numbers)


INTENTS: list[Intent] = [
    # ---------------------------------------------------------------- lookup: one table, one value
    _i("team_conference", "lookup", "team", [
        "Which conference do the {team} play in?", "What conference are the {team} in?",
        "Name the conference of the {team}.", "In which conference is the {team} franchise?",
        "Tell me the conference the {team} belong to.", "{team}: East or West?"],
       "SELECT conference FROM teams WHERE full_name = '{team}';",
       "Read conference from teams where full_name is '{team}'."),
    _i("team_division", "lookup", "team", [
        "Which division are the {team} in?", "What division do the {team} play in?",
        "Name the division of the {team}.", "Give me the division of the {team}.",
        "Tell me which division the {team} belong to.", "The {team} compete in what division?"],
       "SELECT division FROM teams WHERE full_name = '{team}';",
       "Read division from teams where full_name is '{team}'."),
    _i("team_abbreviation", "lookup", "team", [
        "What is the abbreviation of the {team}?", "What's the three-letter code for the {team}?",
        "Give the team abbreviation for the {team}.", "How are the {team} abbreviated?",
        "Show the short code of the {team}.", "Which abbreviation stands for the {team}?"],
       "SELECT abbreviation FROM teams WHERE full_name = '{team}';",
       "Read abbreviation from teams where full_name is '{team}'."),
    _i("team_state", "lookup", "team", [
        "In which state are the {team} based?", "What state do the {team} play in?",
        "Which state is home to the {team}?", "Give me the home state of the {team}.",
        "Tell me the state where the {team} are located.", "The {team} are from which state?"],
       "SELECT state FROM teams WHERE full_name = '{team}';",
       "Read state from teams where full_name is '{team}'."),
    _i("player_position", "lookup", "player", [
        "What position does {player} play?", "Which position is {player} listed at?",
        "Give me the position of {player}.", "What is {player}'s position?",
        "Tell me the listed position for {player}.", "{player} plays which position?"],
       "SELECT position FROM players WHERE full_name = '{player}';",
       "Read position from players where full_name is '{player}'."),
    _i("player_height", "lookup", "player", [
        "How tall is {player} in centimeters?", "What is the height of {player} in cm?",
        "Give me {player}'s height in centimeters.", "Tell me how tall {player} is, in cm.",
        "What height is {player} listed at, in cm?", "{player} stands how many centimeters tall?"],
       "SELECT height_cm FROM players WHERE full_name = '{player}';",
       "Read height_cm from players where full_name is '{player}'."),
    _i("player_country", "lookup", "player", [
        "Which country is {player} from?", "What country was {player} born in?",
        "Give me the home country of {player}.", "Where is {player} from, by country?",
        "Tell me {player}'s country.", "{player} comes from which country?"],
       "SELECT country FROM players WHERE full_name = '{player}';",
       "Read country from players where full_name is '{player}'."),
    _i("player_draft_year", "lookup", "player", [
        "In what year was {player} drafted?", "What is the draft year of {player}?",
        "Which draft class is {player} from?", "Give me {player}'s draft year.",
        "Tell me the year {player} was drafted.", "{player} was drafted in which year?"],
       "SELECT draft_year FROM players WHERE full_name = '{player}';",
       "Read draft_year from players where full_name is '{player}'."),
    # ---------------------------------------------------------------- filter: one table, conditions, lists
    _i("teams_in_division", "filter", "division", [
        "Which teams are in the {division} division?", "List the teams of the {division} division.",
        "Name all teams that play in the {division} division.", "Show every team in the {division} division.",
        "Give me the {division} division teams.", "What franchises make up the {division} division?"],
       "SELECT full_name FROM teams WHERE division = '{division}';",
       "Filter teams on division = '{division}' and list full_name."),
    _i("teams_in_state", "filter", "state", [
        "Which teams are based in {state}?", "List the teams located in {state}.",
        "Name the NBA teams from {state}.", "Show all teams whose home state is {state}.",
        "Give me every team in the state of {state}.", "What franchises play in {state}?"],
       "SELECT full_name FROM teams WHERE state = '{state}';",
       "Filter teams on state = '{state}' and list full_name."),
    _i("players_from_country", "filter", "country", [
        "Which players are from {country}?", "List all players born in {country}.",
        "Name the players whose country is {country}.", "Show me every player from {country}.",
        "Give me the players who come from {country}.", "Find the players with {country} as their country."],
       "SELECT full_name FROM players WHERE country = '{country}';",
       "Filter players on country = '{country}' and list full_name."),
    _i("players_position_draft", "filter", "position year", [
        "List the {position_name} drafted in {year}.", "Which {position_name} were drafted in {year}?",
        "Name all {position_name} from the {year} draft.", "Show the {position_name} whose draft year is {year}.",
        "Give me every one of the {position_name} picked in the {year} draft.",
        "Who are the {position_name} of the {year} draft class?"],
       "SELECT full_name FROM players WHERE position = '{position}' AND draft_year = {year};",
       "Filter players on position = '{position}' and draft_year = {year} and list full_name."),
    _i("players_taller_than", "filter", "n", [
        "Which players are taller than {n} cm?", "List players with a height over {n} centimeters.",
        "Name every player above {n} cm tall.", "Show the players whose height exceeds {n} cm.",
        "Give me all players taller than {n} centimeters.", "Who measures more than {n} cm?"],
       "SELECT full_name FROM players WHERE height_cm > {n};",
       "Filter players on height_cm > {n} and list full_name.", n=tuple(range(212, 223))),
    _i("high_home_scores", "filter", "season n", [
        "List the ids of games in the {season} season where the home team scored more than {n} points.",
        "Which games in {season} saw the home side score over {n} points? Give the game ids.",
        "Show game ids from {season} with a home score above {n}.",
        "Give me the ids of {season} games in which the home team put up more than {n} points.",
        "Find the {season} games where the home team topped {n} points and return their ids.",
        "In {season}, what games had the home team scoring more than {n}? List ids."],
       "SELECT game_id FROM games WHERE season = '{season}' AND home_score > {n};",
       "Filter games on season = '{season}' and home_score > {n} and list game_id.",
       n=tuple(range(136, 152))),
    _i("games_on_date", "filter", "date", [
        "What are the ids of the games played on {date}?", "List the games played on {date}.",
        "Which games took place on {date}? Give their ids.", "Show me the game ids for {date}.",
        "Give the ids of all games on {date}.", "On {date}, which games were played?"],
       "SELECT game_id FROM games WHERE game_date = '{date}';",
       "Filter games on game_date = '{date}' and list game_id."),
    # ---------------------------------------------------------------- aggregate: one table, COUNT/AVG/MAX
    _i("count_players_position", "aggregate", "position country", [
        "How many {position_name} come from {country}?", "Count the {position_name} born in {country}.",
        "What is the number of {position_name} from {country}?", "Give me the count of {position_name} from {country}.",
        "Tell me how many {position_name} are from {country}.", "{country} has produced how many {position_name}?"],
       "SELECT COUNT(*) FROM players WHERE position = '{position}' AND country = '{country}';",
       "Count players where position = '{position}' and country = '{country}'."),
    _i("count_games_season", "aggregate", "season game_type", [
        "How many {game_type_name} games were played in {season}?",
        "Count the {game_type_name} games of the {season} season.",
        "What is the number of {game_type_name} games in {season}?",
        "Give me the total count of {game_type_name} games in the {season} season.",
        "Tell me how many {game_type_name} games the {season} season had.",
        "In {season}, how many {game_type_name} games took place?"],
       "SELECT COUNT(*) FROM games WHERE season = '{season}' AND game_type = '{game_type}';",
       "Count games where season = '{season}' and game_type = '{game_type}'."),
    _i("avg_game_total", "aggregate", "season game_type", [
        "What was the average combined score of {game_type_name} games in {season}?",
        "On average, how many total points were scored per {game_type_name} game in {season}?",
        "Give me the mean total points per {game_type_name} game for the {season} season.",
        "What's the average of home plus away points in {season} {game_type_name} games?",
        "Tell me the average game total in the {season} {game_type_name}.",
        "Both teams combined, how many points did a {season} {game_type_name} game average?"],
       "SELECT AVG(home_score + away_score) FROM games WHERE season = '{season}' AND game_type = '{game_type}';",
       "Average home_score + away_score over games where season = '{season}' and game_type = '{game_type}'."),
    _i("max_home_score", "aggregate", "season game_type", [
        "What was the highest home score in the {season} {game_type_name}?",
        "What is the most points a home team scored in a {season} {game_type_name} game?",
        "Give me the maximum home score of {season} {game_type_name} games.",
        "Tell me the top home-team score in the {season} {game_type_name}.",
        "Highest points by a home team in {season} {game_type_name} games?",
        "In the {season} {game_type_name}, what was the best scoring night by a home team?"],
       "SELECT MAX(home_score) FROM games WHERE season = '{season}' AND game_type = '{game_type}';",
       "Take MAX(home_score) over games where season = '{season}' and game_type = '{game_type}'."),
    _i("avg_height_position_draft", "aggregate", "position year", [
        "What is the average height of {position_name} drafted in {year}?",
        "How tall, on average, are the {position_name} from the {year} draft?",
        "Give me the mean height in cm of {position_name} drafted in {year}.",
        "Tell me the average height_cm of the {year} draft's {position_name}.",
        "Average height of {position_name} in the {year} draft class?",
        "Among {position_name} picked in {year}, what is the typical height on average?"],
       "SELECT AVG(height_cm) FROM players WHERE position = '{position}' AND draft_year = {year};",
       "Average height_cm over players where position = '{position}' and draft_year = {year}."),
    _i("count_games_on_date", "aggregate", "date", [
        "How many games were played on {date}?", "Count the games on {date}.",
        "What is the number of games played on {date}?", "Give me the game count for {date}.",
        "Tell me how many games took place on {date}.", "On {date}, how many games were there?"],
       "SELECT COUNT(*) FROM games WHERE game_date = '{date}';",
       "Count games where game_date = '{date}'."),
    _i("max_height_country", "aggregate", "country", [
        "What is the tallest height among players from {country}?",
        "How tall is the tallest player from {country}, in cm?",
        "Give me the maximum height of players born in {country}.",
        "Tell me the greatest height_cm of any player from {country}.",
        "Max height of {country} players?", "Of all players from {country}, what height does the tallest reach?"],
       "SELECT MAX(height_cm) FROM players WHERE country = '{country}';",
       "Take MAX(height_cm) over players where country = '{country}'."),
    # ---------------------------------------------------------------- join: two or three tables
    _i("player_total_stat", "join", "player season stat", [
        "How many {stat} did {player} have in the {season} season?", "What was {player}'s total {stat} in {season}?",
        "Total {stat} for {player} during {season}?", "Give me the sum of {player}'s {stat} in the {season} season.",
        "Tell me how many {stat} {player} recorded in {season}.",
        "Across the {season} season, how many {stat} did {player} put up?"],
       f"SELECT SUM(b.{{col}}) {PBS} WHERE p.full_name = '{{player}}' AND g.season = '{{season}}';",
       "Sum {col} in player_box_scores joined to players and games, for '{player}' in season '{season}'."),
    _i("player_avg_stat", "join", "player season stat", [
        "How many {stat} per game did {player} average in {season}?",
        "What was {player}'s average {stat} per game in the {season} season?",
        "Give me {player}'s {stat} per game for {season}.", "What did {player} average in {stat} during {season}?",
        "Tell me the per-game {stat} average of {player} in {season}.",
        "{player}: {stat} per game in the {season} season?"],
       f"SELECT AVG(b.{{col}}) {PBS} WHERE p.full_name = '{{player}}' AND g.season = '{{season}}';",
       "Average {col} in player_box_scores joined to players and games, for '{player}' in season '{season}'."),
    _i("player_career_high", "join", "player stat", [
        "What is {player}'s career high in {stat}?", "What is the most {stat} {player} has had in a single game?",
        "Give me {player}'s single-game high for {stat}.",
        "Tell me the maximum {stat} {player} recorded in one game.",
        "Highest {stat} total in one game for {player}?", "In his best game, how many {stat} did {player} get?"],
       "SELECT MAX(b.{col}) FROM player_box_scores b JOIN players p ON p.player_id = b.player_id "
       "WHERE p.full_name = '{player}';",
       "Take MAX({col}) in player_box_scores joined to players, for '{player}'."),
    _i("player_team_season", "join", "player season", [
        "Which team did {player} play for in {season}?", "What team was {player} on during the {season} season?",
        "Name {player}'s team in {season}.", "Give me the team {player} was rostered on in {season}.",
        "Tell me who {player} played for in the {season} season.",
        "For which franchise did {player} suit up in {season}?"],
       "SELECT t.full_name FROM rosters r JOIN players p ON p.player_id = r.player_id "
       "JOIN teams t ON t.team_id = r.team_id WHERE p.full_name = '{player}' AND r.season = '{season}';",
       "Join rosters to players and teams, for '{player}' in season '{season}', and return the team full_name."),
    _i("team_wins", "join", "team season", [
        "How many regular season games did the {team} win in {season}?",
        "What was the {team}'s win total in the {season} regular season?",
        "Count the {team}'s regular season wins in {season}.",
        "Give me the number of wins for the {team} in the {season} regular season.",
        "Tell me how many games the {team} won during the {season} regular season.",
        "In the {season} regular season, how many victories did the {team} have?"],
       f"SELECT COUNT(*) {TBS} WHERE t.full_name = '{{team}}' AND g.season = '{{season}}' "
       "AND g.game_type = 'Regular Season' AND tb.won = 1;",
       "Count team_box_scores rows with won = 1, joined to teams and games, for '{team}' in the "
       "'{season}' regular season."),
    _i("team_avg_stat", "join", "team season stat", [
        "How many {stat} per game did the {team} average in {season}?",
        "What was the {team}'s average {stat} per game in the {season} season?",
        "Give me the {team}'s {stat} per game in {season}.",
        "Tell me the per-game {stat} of the {team} during {season}.",
        "On average, how many {stat} did the {team} record per game in {season}?",
        "{team} {stat} per game, {season} season?"],
       f"SELECT AVG(tb.{{col}}) {TBS} WHERE t.full_name = '{{team}}' AND g.season = '{{season}}';",
       "Average {col} in team_box_scores joined to teams and games, for '{team}' in season '{season}'."),
    _i("season_champion", "join", "season", [
        "Which team won the championship in {season}?", "Who were the {season} champions?",
        "Name the team that won the {season} title.", "Give me the champion of the {season} season.",
        "Tell me which franchise won it all in {season}.", "The {season} championship went to which team?"],
       "SELECT t.full_name FROM seasons s JOIN teams t ON t.team_id = s.champion_team_id "
       "WHERE s.season = '{season}';",
       "Join seasons to teams on champion_team_id for season '{season}' and return full_name."),
    _i("team_roster", "join", "team season", [
        "Who was on the {team} roster in {season}?", "List the players of the {team} in the {season} season.",
        "Name every player on the {team} in {season}.", "Show the {season} roster of the {team}.",
        "Give me all players rostered by the {team} in {season}.",
        "Which players made up the {team}'s {season} roster?"],
       "SELECT p.full_name FROM rosters r JOIN players p ON p.player_id = r.player_id "
       "JOIN teams t ON t.team_id = r.team_id WHERE t.full_name = '{team}' AND r.season = '{season}';",
       "Join rosters to players and teams, for '{team}' in season '{season}', and list player full_name."),
    _i("player_games_played", "join", "player season game_type", [
        "How many {game_type_name} games did {player} play in {season}?",
        "In how many {game_type_name} games did {player} appear in {season}?",
        "Count {player}'s {game_type_name} games in the {season} season.",
        "Give me the number of {game_type_name} games {player} played in {season}.",
        "Tell me how many {season} {game_type_name} games {player} suited up for.",
        "{player} appeared in how many {game_type_name} games in {season}?"],
       f"SELECT COUNT(*) {PBS} WHERE p.full_name = '{{player}}' AND g.season = '{{season}}' "
       "AND g.game_type = '{game_type}';",
       "Count player_box_scores rows joined to players and games, for '{player}' in season '{season}' "
       "and game_type '{game_type}'."),
    _i("team_home_wins", "join", "team season", [
        "How many home games did the {team} win in {season}?", "Count the {team}'s home wins in {season}.",
        "What was the number of home victories for the {team} in the {season} season?",
        "Give me the {team}'s home win total for {season}.",
        "Tell me how many games the {team} won at home in {season}.",
        "At home in {season}, how many times did the {team} win?"],
       "SELECT COUNT(*) FROM games g JOIN teams t ON t.team_id = g.home_team_id WHERE t.full_name = '{team}' "
       "AND g.season = '{season}' AND g.home_score > g.away_score;",
       "Count games joined to teams on home_team_id, for '{team}' in season '{season}' with home_score > "
       "away_score."),
    # ---------------------------------------------------------------- group_order: GROUP BY, ORDER BY, LIMIT
    _i("top_players_stat", "group_order", "season stat k", [
        "Who were the top {k} players in total {stat} in {season}?",
        "List the {k} players with the most {stat} in the {season} season.",
        "Which {k} players recorded the most {stat} in {season}?",
        "Give me the top {k} in {stat} for {season}, with their totals.",
        "Show the {k} leaders in total {stat} during {season}.",
        "Rank the top {k} players by {stat} in the {season} season."],
       f"SELECT p.full_name, SUM(b.{{col}}) AS total {PBS} WHERE g.season = '{{season}}' "
       "GROUP BY p.player_id ORDER BY total DESC LIMIT {k};",
       "Sum {col} per player in player_box_scores joined to players and games for season '{season}', "
       "order by the total descending, keep {k}.", k=(3, 5, 10)),
    _i("top_teams_wins", "group_order", "season k", [
        "Which {k} teams won the most regular season games in {season}?",
        "List the {k} teams with the most regular season wins in {season}.",
        "Who were the top {k} teams by wins in the {season} regular season?",
        "Give me the {k} winningest teams of the {season} regular season.",
        "Show the best {k} regular season records by wins in {season}.",
        "Rank the top {k} teams in {season} by regular season victories."],
       f"SELECT t.full_name, COUNT(*) AS wins {TBS} WHERE g.season = '{{season}}' "
       "AND g.game_type = 'Regular Season' AND tb.won = 1 GROUP BY t.team_id ORDER BY wins DESC LIMIT {k};",
       "Count wins per team in team_box_scores joined to teams and games for the '{season}' regular season, "
       "order by wins descending, keep {k}.", k=(3, 5, 8)),
    _i("tallest_from_country", "group_order", "country k", [
        "Who are the {k} tallest players from {country}?", "List the {k} tallest players born in {country}.",
        "Name the {k} tallest {country} players with their heights.",
        "Give me the top {k} players from {country} by height.",
        "Show the {k} players from {country} with the greatest height.",
        "Rank {country}'s players by height and give the top {k}."],
       "SELECT full_name, height_cm FROM players WHERE country = '{country}' ORDER BY height_cm DESC LIMIT {k};",
       "Filter players on country = '{country}', order by height_cm descending, keep {k}.", k=(2, 3, 5)),
    _i("team_single_game_best", "group_order", "team season stat", [
        "Who had the most {stat} in a single game for the {team} in {season}?",
        "Which {team} player posted the highest single-game {stat} in {season}?",
        "Name the {team} player with the best one-game {stat} total in {season}.",
        "Give me the {team}'s top single-game {stat} performance of {season}.",
        "Tell me who recorded the most {stat} in one game for the {team} during {season}.",
        "In {season}, whose one-game {stat} mark was the highest on the {team}?"],
       f"SELECT p.full_name, b.{{col}} {PBS} JOIN teams t ON t.team_id = b.team_id "
       "WHERE t.full_name = '{team}' AND g.season = '{season}' ORDER BY b.{col} DESC LIMIT 1;",
       "Join player_box_scores to players, games and teams for '{team}' in season '{season}', order by {col} "
       "descending, keep 1."),
    _i("team_leader_stat", "group_order", "team season stat", [
        "Who led the {team} in total {stat} in {season}?",
        "Which {team} player had the most {stat} in the {season} season?",
        "Name the {team}'s leader in {stat} for {season}.",
        "Give me the top {stat} total on the {team} in {season}.",
        "Tell me which player topped the {team} in {stat} during {season}.",
        "In {season}, who was the {team}'s {stat} leader?"],
       f"SELECT p.full_name, SUM(b.{{col}}) AS total {PBS} JOIN teams t ON t.team_id = b.team_id "
       "WHERE t.full_name = '{team}' AND g.season = '{season}' GROUP BY p.player_id ORDER BY total DESC LIMIT 1;",
       "Sum {col} per player for '{team}' in season '{season}' (player_box_scores joined to players, games, "
       "teams), order by the total descending, keep 1."),
    _i("division_scoring", "group_order", "division season", [
        "What did each {division} division team average in points in {season}, best first?",
        "List the {division} division teams by points per game in {season}, highest first.",
        "Rank the {division} division teams by average points in the {season} season.",
        "Give me points per game for every {division} division team in {season}, sorted descending.",
        "Show the {division} division's scoring averages for {season} from best to worst.",
        "Order the teams of the {division} division by how many points they averaged in {season}."],
       f"SELECT t.full_name, AVG(tb.points) AS avg_points {TBS} WHERE t.division = '{{division}}' "
       "AND g.season = '{season}' GROUP BY t.team_id ORDER BY avg_points DESC;",
       "Average points per team in team_box_scores joined to teams and games for division '{division}' in "
       "season '{season}', ordered descending."),
    _i("positions_in_draft", "group_order", "year", [
        "How many players of each position were drafted in {year}?",
        "Count the {year} draft class by position.",
        "Give me the number of players per position from the {year} draft.",
        "Break down the players drafted in {year} by position.",
        "Show position counts for players with draft year {year}.",
        "For the {year} draft, how many picks were there at each position?"],
       "SELECT position, COUNT(*) FROM players WHERE draft_year = {year} GROUP BY position;",
       "Count players per position where draft_year = {year}."),
    _i("player_best_season", "group_order", "player stat", [
        "In which season did {player} average the most {stat}?",
        "What was {player}'s best season for {stat} per game?",
        "Name the season in which {player} had his highest {stat} average.",
        "Give me the season when {player} averaged the most {stat}.",
        "Tell me {player}'s top season by average {stat}.",
        "Which of {player}'s seasons saw his best per-game {stat}?"],
       f"SELECT g.season {PBS} WHERE p.full_name = '{{player}}' GROUP BY g.season "
       "ORDER BY AVG(b.{col}) DESC LIMIT 1;",
       "Average {col} per season for '{player}' (player_box_scores joined to players and games), order "
       "descending, keep the season."),
    # ---------------------------------------------------------------- nested: HAVING, subqueries, comparisons
    _i("players_avg_over", "nested", "season stat n", [
        "Which players averaged more than {n} {stat} per game in {season}?",
        "List the players with over {n} {stat} per game in the {season} season.",
        "Name everyone who averaged above {n} {stat} in {season}.",
        "Give me the players whose {stat} per game topped {n} in {season}.",
        "Show all players averaging more than {n} {stat} during {season}.",
        "Who put up better than {n} {stat} a game in {season}?"],
       f"SELECT p.full_name {PBS} WHERE g.season = '{{season}}' GROUP BY p.player_id "
       "HAVING AVG(b.{col}) > {n};",
       "Group player_box_scores (joined to players and games) for season '{season}' by player and keep "
       "AVG({col}) > {n}.", n=AVG_THRESHOLDS),
    _i("teams_over_wins", "nested", "season n", [
        "Which teams won more than {n} regular season games in {season}?",
        "List the teams with over {n} regular season wins in {season}.",
        "Name the teams that topped {n} wins in the {season} regular season.",
        "Give me every team with more than {n} wins in the {season} regular season.",
        "Show the teams whose {season} regular season win total exceeded {n}.",
        "In the {season} regular season, who finished with more than {n} victories?"],
       f"SELECT t.full_name {TBS} WHERE g.season = '{{season}}' AND g.game_type = 'Regular Season' "
       "AND tb.won = 1 GROUP BY t.team_id HAVING COUNT(*) > {n};",
       "Group wins (won = 1) in team_box_scores joined to teams and games for the '{season}' regular season "
       "by team and keep COUNT(*) > {n}.", n=(45, 48, 50, 52, 55)),
    _i("compare_players", "nested", "player1 player2 season stat", [
        "Who had more {stat} in {season}, {player1} or {player2}?",
        "Between {player1} and {player2}, who recorded more {stat} in the {season} season?",
        "Which of {player1} and {player2} had the higher {stat} total in {season}?",
        "Give me whoever had more {stat} in {season}: {player1} or {player2}.",
        "Tell me if {player1} or {player2} put up more {stat} during {season}.",
        "{player1} vs {player2} in {season}: who finished with more {stat}?"],
       f"SELECT p.full_name {PBS} WHERE p.full_name IN ('{{player1}}', '{{player2}}') AND g.season = '{{season}}' "
       "GROUP BY p.player_id ORDER BY SUM(b.{col}) DESC LIMIT 1;",
       "Sum {col} for '{player1}' and '{player2}' in season '{season}' (player_box_scores joined to players "
       "and games), order descending, keep 1."),
    _i("roster_taller_than_avg", "nested", "team season", [
        "Which players on the {team} in {season} were taller than the league's average height?",
        "List the {season} {team} players who are above the average player height.",
        "Name the {team} players of {season} taller than the average of all players.",
        "Give me the {team}'s {season} roster members whose height beats the overall average.",
        "Show {team} players in {season} with height_cm above the average for all players.",
        "Who on the {season} {team} stood taller than the typical player, on average?"],
       "SELECT p.full_name FROM rosters r JOIN players p ON p.player_id = r.player_id "
       "JOIN teams t ON t.team_id = r.team_id WHERE t.full_name = '{team}' AND r.season = '{season}' "
       "AND p.height_cm > (SELECT AVG(height_cm) FROM players);",
       "Join rosters to players and teams for '{team}' in season '{season}' and keep height_cm above a "
       "subquery of AVG(height_cm) over players."),
    _i("teams_outscoring_team", "nested", "team season", [
        "Which teams averaged more points than the {team} in {season}?",
        "List the teams with a higher scoring average than the {team} in the {season} season.",
        "Name the teams that outscored the {team} on average in {season}.",
        "Give me every team whose points per game beat the {team}'s in {season}.",
        "Show teams averaging more points than the {team} during {season}.",
        "In {season}, who scored more per game than the {team}?"],
       f"SELECT t.full_name {TBS} WHERE g.season = '{{season}}' GROUP BY t.team_id HAVING AVG(tb.points) > "
       "(SELECT AVG(tb2.points) FROM team_box_scores tb2 JOIN teams t2 ON t2.team_id = tb2.team_id "
       "JOIN games g2 ON g2.game_id = tb2.game_id WHERE t2.full_name = '{team}' AND g2.season = '{season}');",
       "Group team_box_scores by team for season '{season}' and keep AVG(points) above a subquery of the "
       "'{team}' average in that season."),
    _i("games_above_average", "nested", "season game_type", [
        "How many {season} {game_type_name} games had a combined score above that season's average?",
        "Count the {game_type_name} games in {season} whose total points beat the average total.",
        "What number of {season} {game_type_name} games finished above the average combined score?",
        "Give me the count of {season} {game_type_name} games scoring more than the mean game total.",
        "Tell me how many {game_type_name} games in {season} went over the average total points.",
        "In the {season} {game_type_name}, how many games were higher-scoring than average?"],
       "SELECT COUNT(*) FROM games WHERE season = '{season}' AND game_type = '{game_type}' AND home_score + "
       "away_score > (SELECT AVG(home_score + away_score) FROM games WHERE season = '{season}' AND game_type "
       "= '{game_type}');",
       "Count games in season '{season}' and game_type '{game_type}' with home_score + away_score above a "
       "subquery of its average over the same games."),
]
