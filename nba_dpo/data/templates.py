"""Question intents: phrasings, gold SQL and a reasoning line per intent, across six difficulty levels.

Each intent names the role of every phrasing: `train` (SFT), `pref` (the preference prompt pool only) and `test`
(held out: neither SFT nor DPO sees it).
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
    """One question intent. Each phrasing has its role: `train` phrasings are SFT's, `pref` appears only in the
    preference prompt pool, `test` is held out for the test split (neither SFT nor DPO sees it)."""
    id: str
    difficulty: str
    placeholders: str            # the parameters its phrasings take, space-separated
    train: tuple[str, ...]
    pref: str
    test: str
    sql: str
    reasoning: str
    numbers: dict = field(default_factory=dict)  # choices for {n}/{k}/{year}: name -> tuple, or per-stat dict

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(self.placeholders.split())

    @property
    def phrasings(self) -> tuple[str, ...]:
        """Every phrasing, train ones first; a phrasing's index is part of its questions' ids."""
        return (*self.train, self.pref, self.test)

    def phrasing_role(self, idx: int) -> str:
        return (["train"] * len(self.train) + ["pref", "test"])[idx]


INTENTS: list[Intent] = [
    # ---------------------------------------------------------------- lookup: one table, one value
    Intent("team_conference", "lookup", "team",
           train=("Which conference do the {team} play in?", "What conference are the {team} in?",
                  "Name the conference of the {team}.", "In which conference is the {team} franchise?"),
           pref="Tell me the conference the {team} belong to.",
           test="{team}: East or West?",
           sql="SELECT conference FROM teams WHERE full_name = '{team}';",
           reasoning="Read conference from teams where full_name is '{team}'."),
    Intent("team_division", "lookup", "team",
           train=("Which division are the {team} in?", "What division do the {team} play in?",
                  "Name the division of the {team}.", "Give me the division of the {team}."),
           pref="Tell me which division the {team} belong to.",
           test="The {team} compete in what division?",
           sql="SELECT division FROM teams WHERE full_name = '{team}';",
           reasoning="Read division from teams where full_name is '{team}'."),
    Intent("team_abbreviation", "lookup", "team",
           train=("What is the abbreviation of the {team}?", "What's the three-letter code for the {team}?",
                  "Give the team abbreviation for the {team}.", "How are the {team} abbreviated?"),
           pref="Show the short code of the {team}.",
           test="Which abbreviation stands for the {team}?",
           sql="SELECT abbreviation FROM teams WHERE full_name = '{team}';",
           reasoning="Read abbreviation from teams where full_name is '{team}'."),
    Intent("team_state", "lookup", "team",
           train=("In which state are the {team} based?", "What state do the {team} play in?",
                  "Which state is home to the {team}?", "Give me the home state of the {team}."),
           pref="Tell me the state where the {team} are located.",
           test="The {team} are from which state?",
           sql="SELECT state FROM teams WHERE full_name = '{team}';",
           reasoning="Read state from teams where full_name is '{team}'."),
    Intent("player_position", "lookup", "player",
           train=("What position does {player} play?", "Which position is {player} listed at?",
                  "Give me the position of {player}.", "What is {player}'s position?"),
           pref="Tell me the listed position for {player}.",
           test="{player} plays which position?",
           sql="SELECT position FROM players WHERE full_name = '{player}';",
           reasoning="Read position from players where full_name is '{player}'."),
    Intent("player_height", "lookup", "player",
           train=("How tall is {player} in centimeters?", "What is the height of {player} in cm?",
                  "Give me {player}'s height in centimeters.", "Tell me how tall {player} is, in cm."),
           pref="What height is {player} listed at, in cm?",
           test="{player} stands how many centimeters tall?",
           sql="SELECT height_cm FROM players WHERE full_name = '{player}';",
           reasoning="Read height_cm from players where full_name is '{player}'."),
    Intent("player_country", "lookup", "player",
           train=("Which country is {player} from?", "What country was {player} born in?",
                  "Give me the home country of {player}.", "Where is {player} from, by country?"),
           pref="Tell me {player}'s country.",
           test="{player} comes from which country?",
           sql="SELECT country FROM players WHERE full_name = '{player}';",
           reasoning="Read country from players where full_name is '{player}'."),
    Intent("player_draft_year", "lookup", "player",
           train=("In what year was {player} drafted?", "What is the draft year of {player}?",
                  "Which draft class is {player} from?", "Give me {player}'s draft year."),
           pref="Tell me the year {player} was drafted.",
           test="{player} was drafted in which year?",
           sql="SELECT draft_year FROM players WHERE full_name = '{player}';",
           reasoning="Read draft_year from players where full_name is '{player}'."),
    # ---------------------------------------------------------------- filter: one table, conditions, lists
    Intent("teams_in_division", "filter", "division",
           train=("Which teams are in the {division} division?", "List the teams of the {division} division.",
                  "Name all teams that play in the {division} division.",
                  "Show every team in the {division} division."),
           pref="Give me the {division} division teams.",
           test="What franchises make up the {division} division?",
           sql="SELECT full_name FROM teams WHERE division = '{division}';",
           reasoning="Filter teams on division = '{division}' and list full_name."),
    Intent("teams_in_state", "filter", "state",
           train=("Which teams are based in {state}?", "List the teams located in {state}.",
                  "Name the NBA teams from {state}.", "Show all teams whose home state is {state}."),
           pref="Give me every team in the state of {state}.",
           test="What franchises play in {state}?",
           sql="SELECT full_name FROM teams WHERE state = '{state}';",
           reasoning="Filter teams on state = '{state}' and list full_name."),
    Intent("players_from_country", "filter", "country",
           train=("Which players are from {country}?", "List all players born in {country}.",
                  "Name the players whose country is {country}.", "Show me every player from {country}."),
           pref="Give me the players who come from {country}.",
           test="Find the players with {country} as their country.",
           sql="SELECT full_name FROM players WHERE country = '{country}';",
           reasoning="Filter players on country = '{country}' and list full_name."),
    Intent("players_position_draft", "filter", "position year",
           train=("List the {position_name} drafted in {year}.", "Which {position_name} were drafted in {year}?",
                  "Name all {position_name} from the {year} draft.",
                  "Show the {position_name} whose draft year is {year}."),
           pref="Give me every one of the {position_name} picked in the {year} draft.",
           test="Who are the {position_name} of the {year} draft class?",
           sql="SELECT full_name FROM players WHERE position = '{position}' AND draft_year = {year};",
           reasoning="Filter players on position = '{position}' and draft_year = {year} and list full_name."),
    Intent("players_taller_than", "filter", "n",
           train=("Which players are taller than {n} cm?", "List players with a height over {n} centimeters.",
                  "Name every player above {n} cm tall.", "Show the players whose height exceeds {n} cm."),
           pref="Give me all players taller than {n} centimeters.",
           test="Who measures more than {n} cm?",
           sql="SELECT full_name FROM players WHERE height_cm > {n};",
           reasoning="Filter players on height_cm > {n} and list full_name.",
           numbers={"n": tuple(range(212, 223))}),
    Intent("high_home_scores", "filter", "season n",
           train=("List the ids of games in the {season} season where the home team scored more than {n} points.",
                  "Which games in {season} saw the home side score over {n} points? Give the game ids.",
                  "Show game ids from {season} with a home score above {n}.",
                  "Give me the ids of {season} games in which the home team put up more than {n} points."),
           pref="Find the {season} games where the home team topped {n} points and return their ids.",
           test="In {season}, what games had the home team scoring more than {n}? List ids.",
           sql="SELECT game_id FROM games WHERE season = '{season}' AND home_score > {n};",
           reasoning="Filter games on season = '{season}' and home_score > {n} and list game_id.",
           numbers={"n": tuple(range(136, 152))}),
    Intent("games_on_date", "filter", "date",
           train=("What are the ids of the games played on {date}?", "List the games played on {date}.",
                  "Which games took place on {date}? Give their ids.", "Show me the game ids for {date}."),
           pref="Give the ids of all games on {date}.",
           test="On {date}, which games were played?",
           sql="SELECT game_id FROM games WHERE game_date = '{date}';",
           reasoning="Filter games on game_date = '{date}' and list game_id."),
    # ---------------------------------------------------------------- aggregate: one table, COUNT/AVG/MAX
    Intent("count_players_position", "aggregate", "position country",
           train=("How many {position_name} come from {country}?", "Count the {position_name} born in {country}.",
                  "What is the number of {position_name} from {country}?",
                  "Give me the count of {position_name} from {country}."),
           pref="Tell me how many {position_name} are from {country}.",
           test="{country} has produced how many {position_name}?",
           sql="SELECT COUNT(*) FROM players WHERE position = '{position}' AND country = '{country}';",
           reasoning="Count players where position = '{position}' and country = '{country}'."),
    Intent("count_games_season", "aggregate", "season game_type",
           train=("How many {game_type_name} games were played in {season}?",
                  "Count the {game_type_name} games of the {season} season.",
                  "What is the number of {game_type_name} games in {season}?",
                  "Give me the total count of {game_type_name} games in the {season} season."),
           pref="Tell me how many {game_type_name} games the {season} season had.",
           test="In {season}, how many {game_type_name} games took place?",
           sql="SELECT COUNT(*) FROM games WHERE season = '{season}' AND game_type = '{game_type}';",
           reasoning="Count games where season = '{season}' and game_type = '{game_type}'."),
    Intent("avg_game_total", "aggregate", "season game_type",
           train=("What was the average combined score of {game_type_name} games in {season}?",
                  "On average, how many total points were scored per {game_type_name} game in {season}?",
                  "Give me the mean total points per {game_type_name} game for the {season} season.",
                  "What's the average of home plus away points in {season} {game_type_name} games?"),
           pref="Tell me the average game total in the {season} {game_type_name}.",
           test="Both teams combined, how many points did a {season} {game_type_name} game average?",
           sql="SELECT AVG(home_score + away_score) FROM games WHERE season = '{season}' AND game_type = "
               "'{game_type}';",
           reasoning="Average home_score + away_score over games where season = '{season}' and game_type = "
                     "'{game_type}'."),
    Intent("max_home_score", "aggregate", "season game_type",
           train=("What was the highest home score in the {season} {game_type_name}?",
                  "What is the most points a home team scored in a {season} {game_type_name} game?",
                  "Give me the maximum home score of {season} {game_type_name} games.",
                  "Tell me the top home-team score in the {season} {game_type_name}."),
           pref="Highest points by a home team in {season} {game_type_name} games?",
           test="In the {season} {game_type_name}, what was the best scoring night by a home team?",
           sql="SELECT MAX(home_score) FROM games WHERE season = '{season}' AND game_type = '{game_type}';",
           reasoning="Take MAX(home_score) over games where season = '{season}' and game_type = '{game_type}'."),
    Intent("avg_height_position_draft", "aggregate", "position year",
           train=("What is the average height of {position_name} drafted in {year}?",
                  "How tall, on average, are the {position_name} from the {year} draft?",
                  "Give me the mean height in cm of {position_name} drafted in {year}.",
                  "Tell me the average height_cm of the {year} draft's {position_name}."),
           pref="Average height of {position_name} in the {year} draft class?",
           test="Among {position_name} picked in {year}, what is the typical height on average?",
           sql="SELECT AVG(height_cm) FROM players WHERE position = '{position}' AND draft_year = {year};",
           reasoning="Average height_cm over players where position = '{position}' and draft_year = {year}."),
    Intent("count_games_on_date", "aggregate", "date",
           train=("How many games were played on {date}?", "Count the games on {date}.",
                  "What is the number of games played on {date}?", "Give me the game count for {date}."),
           pref="Tell me how many games took place on {date}.",
           test="On {date}, how many games were there?",
           sql="SELECT COUNT(*) FROM games WHERE game_date = '{date}';",
           reasoning="Count games where game_date = '{date}'."),
    Intent("max_height_country", "aggregate", "country",
           train=("What is the tallest height among players from {country}?",
                  "How tall is the tallest player from {country}, in cm?",
                  "Give me the maximum height of players born in {country}.",
                  "Tell me the greatest height_cm of any player from {country}."),
           pref="Max height of {country} players?",
           test="Of all players from {country}, what height does the tallest reach?",
           sql="SELECT MAX(height_cm) FROM players WHERE country = '{country}';",
           reasoning="Take MAX(height_cm) over players where country = '{country}'."),
    # ---------------------------------------------------------------- join: two or three tables
    Intent("player_total_stat", "join", "player season stat",
           train=("How many {stat} did {player} have in the {season} season?",
                  "What was {player}'s total {stat} in {season}?", "Total {stat} for {player} during {season}?",
                  "Give me the sum of {player}'s {stat} in the {season} season."),
           pref="Tell me how many {stat} {player} recorded in {season}.",
           test="Across the {season} season, how many {stat} did {player} put up?",
           sql=f"SELECT SUM(b.{{col}}) {PBS} WHERE p.full_name = '{{player}}' AND g.season = '{{season}}';",
           reasoning="Sum {col} in player_box_scores joined to players and games, for '{player}' in season "
                     "'{season}'."),
    Intent("player_avg_stat", "join", "player season stat",
           train=("How many {stat} per game did {player} average in {season}?",
                  "What was {player}'s average {stat} per game in the {season} season?",
                  "Give me {player}'s {stat} per game for {season}.",
                  "What did {player} average in {stat} during {season}?"),
           pref="Tell me the per-game {stat} average of {player} in {season}.",
           test="{player}: {stat} per game in the {season} season?",
           sql=f"SELECT AVG(b.{{col}}) {PBS} WHERE p.full_name = '{{player}}' AND g.season = '{{season}}';",
           reasoning="Average {col} in player_box_scores joined to players and games, for '{player}' in season "
                     "'{season}'."),
    Intent("player_career_high", "join", "player stat",
           train=("What is {player}'s career high in {stat}?",
                  "What is the most {stat} {player} has had in a single game?",
                  "Give me {player}'s single-game high for {stat}.",
                  "Tell me the maximum {stat} {player} recorded in one game."),
           pref="Highest {stat} total in one game for {player}?",
           test="In his best game, how many {stat} did {player} get?",
           sql="SELECT MAX(b.{col}) FROM player_box_scores b JOIN players p ON p.player_id = b.player_id "
               "WHERE p.full_name = '{player}';",
           reasoning="Take MAX({col}) in player_box_scores joined to players, for '{player}'."),
    Intent("player_team_season", "join", "player season",
           train=("Which team did {player} play for in {season}?",
                  "What team was {player} on during the {season} season?", "Name {player}'s team in {season}.",
                  "Give me the team {player} was rostered on in {season}."),
           pref="Tell me who {player} played for in the {season} season.",
           test="For which franchise did {player} suit up in {season}?",
           sql="SELECT t.full_name FROM rosters r JOIN players p ON p.player_id = r.player_id "
               "JOIN teams t ON t.team_id = r.team_id WHERE p.full_name = '{player}' AND r.season = '{season}';",
           reasoning="Join rosters to players and teams, for '{player}' in season '{season}', and return the team "
                     "full_name."),
    Intent("team_wins", "join", "team season",
           train=("How many regular season games did the {team} win in {season}?",
                  "What was the {team}'s win total in the {season} regular season?",
                  "Count the {team}'s regular season wins in {season}.",
                  "Give me the number of wins for the {team} in the {season} regular season."),
           pref="Tell me how many games the {team} won during the {season} regular season.",
           test="In the {season} regular season, how many victories did the {team} have?",
           sql=f"SELECT COUNT(*) {TBS} WHERE t.full_name = '{{team}}' AND g.season = '{{season}}' "
               "AND g.game_type = 'Regular Season' AND tb.won = 1;",
           reasoning="Count team_box_scores rows with won = 1, joined to teams and games, for '{team}' in the "
                     "'{season}' regular season."),
    Intent("team_avg_stat", "join", "team season stat",
           train=("How many {stat} per game did the {team} average in {season}?",
                  "What was the {team}'s average {stat} per game in the {season} season?",
                  "Give me the {team}'s {stat} per game in {season}.",
                  "Tell me the per-game {stat} of the {team} during {season}."),
           pref="On average, how many {stat} did the {team} record per game in {season}?",
           test="{team} {stat} per game, {season} season?",
           sql=f"SELECT AVG(tb.{{col}}) {TBS} WHERE t.full_name = '{{team}}' AND g.season = '{{season}}';",
           reasoning="Average {col} in team_box_scores joined to teams and games, for '{team}' in season '{season}'."),
    Intent("season_champion", "join", "season",
           train=("Which team won the championship in {season}?", "Who were the {season} champions?",
                  "Name the team that won the {season} title.", "Give me the champion of the {season} season."),
           pref="Tell me which franchise won it all in {season}.",
           test="The {season} championship went to which team?",
           sql="SELECT t.full_name FROM seasons s JOIN teams t ON t.team_id = s.champion_team_id "
               "WHERE s.season = '{season}';",
           reasoning="Join seasons to teams on champion_team_id for season '{season}' and return full_name."),
    Intent("team_roster", "join", "team season",
           train=("Who was on the {team} roster in {season}?",
                  "List the players of the {team} in the {season} season.",
                  "Name every player on the {team} in {season}.", "Show the {season} roster of the {team}."),
           pref="Give me all players rostered by the {team} in {season}.",
           test="Which players made up the {team}'s {season} roster?",
           sql="SELECT p.full_name FROM rosters r JOIN players p ON p.player_id = r.player_id "
               "JOIN teams t ON t.team_id = r.team_id WHERE t.full_name = '{team}' AND r.season = '{season}';",
           reasoning="Join rosters to players and teams, for '{team}' in season '{season}', and list player "
                     "full_name."),
    Intent("player_games_played", "join", "player season game_type",
           train=("How many {game_type_name} games did {player} play in {season}?",
                  "In how many {game_type_name} games did {player} appear in {season}?",
                  "Count {player}'s {game_type_name} games in the {season} season.",
                  "Give me the number of {game_type_name} games {player} played in {season}."),
           pref="Tell me how many {season} {game_type_name} games {player} suited up for.",
           test="{player} appeared in how many {game_type_name} games in {season}?",
           sql=f"SELECT COUNT(*) {PBS} WHERE p.full_name = '{{player}}' AND g.season = '{{season}}' "
               "AND g.game_type = '{game_type}';",
           reasoning="Count player_box_scores rows joined to players and games, for '{player}' in season '{season}' "
                     "and game_type '{game_type}'."),
    Intent("team_home_wins", "join", "team season",
           train=("How many home games did the {team} win in {season}?", "Count the {team}'s home wins in {season}.",
                  "What was the number of home victories for the {team} in the {season} season?",
                  "Give me the {team}'s home win total for {season}."),
           pref="Tell me how many games the {team} won at home in {season}.",
           test="At home in {season}, how many times did the {team} win?",
           sql="SELECT COUNT(*) FROM games g JOIN teams t ON t.team_id = g.home_team_id WHERE t.full_name = '{team}' "
               "AND g.season = '{season}' AND g.home_score > g.away_score;",
           reasoning="Count games joined to teams on home_team_id, for '{team}' in season '{season}' with home_score > "
                     "away_score."),
    # ---------------------------------------------------------------- group_order: GROUP BY, ORDER BY, LIMIT
    Intent("top_players_stat", "group_order", "season stat k",
           train=("Who were the top {k} players in total {stat} in {season}?",
                  "List the {k} players with the most {stat} in the {season} season.",
                  "Which {k} players recorded the most {stat} in {season}?",
                  "Give me the top {k} in {stat} for {season}, with their totals."),
           pref="Show the {k} leaders in total {stat} during {season}.",
           test="Rank the top {k} players by {stat} in the {season} season.",
           sql=f"SELECT p.full_name, SUM(b.{{col}}) AS total {PBS} WHERE g.season = '{{season}}' "
               "GROUP BY p.player_id ORDER BY total DESC LIMIT {k};",
           reasoning="Sum {col} per player in player_box_scores joined to players and games for season '{season}', "
                     "order by the total descending, keep {k}.",
           numbers={"k": (3, 5, 10)}),
    Intent("top_teams_wins", "group_order", "season k",
           train=("Which {k} teams won the most regular season games in {season}?",
                  "List the {k} teams with the most regular season wins in {season}.",
                  "Who were the top {k} teams by wins in the {season} regular season?",
                  "Give me the {k} winningest teams of the {season} regular season."),
           pref="Show the best {k} regular season records by wins in {season}.",
           test="Rank the top {k} teams in {season} by regular season victories.",
           sql=f"SELECT t.full_name, COUNT(*) AS wins {TBS} WHERE g.season = '{{season}}' "
               "AND g.game_type = 'Regular Season' AND tb.won = 1 GROUP BY t.team_id ORDER BY wins DESC LIMIT {k};",
           reasoning="Count wins per team in team_box_scores joined to teams and games for the '{season}' regular "
                     "season, "
                     "order by wins descending, keep {k}.",
           numbers={"k": (3, 5, 8)}),
    Intent("tallest_from_country", "group_order", "country k",
           train=("Who are the {k} tallest players from {country}?",
                  "List the {k} tallest players born in {country}.",
                  "Name the {k} tallest {country} players with their heights.",
                  "Give me the top {k} players from {country} by height."),
           pref="Show the {k} players from {country} with the greatest height.",
           test="Rank {country}'s players by height and give the top {k}.",
           sql="SELECT full_name, height_cm FROM players WHERE country = '{country}' ORDER BY height_cm DESC "
               "LIMIT {k};",
           reasoning="Filter players on country = '{country}', order by height_cm descending, keep {k}.",
           numbers={"k": (2, 3, 5)}),
    Intent("team_single_game_best", "group_order", "team season stat",
           train=("Who had the most {stat} in a single game for the {team} in {season}?",
                  "Which {team} player posted the highest single-game {stat} in {season}?",
                  "Name the {team} player with the best one-game {stat} total in {season}.",
                  "Give me the {team}'s top single-game {stat} performance of {season}."),
           pref="Tell me who recorded the most {stat} in one game for the {team} during {season}.",
           test="In {season}, whose one-game {stat} mark was the highest on the {team}?",
           sql=f"SELECT p.full_name, b.{{col}} {PBS} JOIN teams t ON t.team_id = b.team_id "
               "WHERE t.full_name = '{team}' AND g.season = '{season}' ORDER BY b.{col} DESC LIMIT 1;",
           reasoning="Join player_box_scores to players, games and teams for '{team}' in season '{season}', order "
                     "by {col} "
                     "descending, keep 1."),
    Intent("team_leader_stat", "group_order", "team season stat",
           train=("Who led the {team} in total {stat} in {season}?",
                  "Which {team} player had the most {stat} in the {season} season?",
                  "Name the {team}'s leader in {stat} for {season}.",
                  "Give me the top {stat} total on the {team} in {season}."),
           pref="Tell me which player topped the {team} in {stat} during {season}.",
           test="In {season}, who was the {team}'s {stat} leader?",
           sql=f"SELECT p.full_name, SUM(b.{{col}}) AS total {PBS} JOIN teams t ON t.team_id = b.team_id "
               "WHERE t.full_name = '{team}' AND g.season = '{season}' GROUP BY p.player_id ORDER BY total DESC "
               "LIMIT 1;",
           reasoning="Sum {col} per player for '{team}' in season '{season}' (player_box_scores joined to "
                     "players, games, "
                     "teams), order by the total descending, keep 1."),
    Intent("division_scoring", "group_order", "division season",
           train=("What did each {division} division team average in points in {season}, best first?",
                  "List the {division} division teams by points per game in {season}, highest first.",
                  "Rank the {division} division teams by average points in the {season} season.",
                  "Give me points per game for every {division} division team in {season}, sorted descending."),
           pref="Show the {division} division's scoring averages for {season} from best to worst.",
           test="Order the teams of the {division} division by how many points they averaged in {season}.",
           sql=f"SELECT t.full_name, AVG(tb.points) AS avg_points {TBS} WHERE t.division = '{{division}}' "
               "AND g.season = '{season}' GROUP BY t.team_id ORDER BY avg_points DESC;",
           reasoning="Average points per team in team_box_scores joined to teams and games for division "
                     "'{division}' in "
                     "season '{season}', ordered descending."),
    Intent("positions_in_draft", "group_order", "year",
           train=("How many players of each position were drafted in {year}?",
                  "Count the {year} draft class by position.",
                  "Give me the number of players per position from the {year} draft.",
                  "Break down the players drafted in {year} by position."),
           pref="Show position counts for players with draft year {year}.",
           test="For the {year} draft, how many picks were there at each position?",
           sql="SELECT position, COUNT(*) FROM players WHERE draft_year = {year} GROUP BY position;",
           reasoning="Count players per position where draft_year = {year}."),
    Intent("player_best_season", "group_order", "player stat",
           train=("In which season did {player} average the most {stat}?",
                  "What was {player}'s best season for {stat} per game?",
                  "Name the season in which {player} had his highest {stat} average.",
                  "Give me the season when {player} averaged the most {stat}."),
           pref="Tell me {player}'s top season by average {stat}.",
           test="Which of {player}'s seasons saw his best per-game {stat}?",
           sql=f"SELECT g.season {PBS} WHERE p.full_name = '{{player}}' GROUP BY g.season "
               "ORDER BY AVG(b.{col}) DESC LIMIT 1;",
           reasoning="Average {col} per season for '{player}' (player_box_scores joined to players and games), order "
                     "descending, keep the season."),
    # ---------------------------------------------------------------- nested: HAVING, subqueries, comparisons
    Intent("players_avg_over", "nested", "season stat n",
           train=("Which players averaged more than {n} {stat} per game in {season}?",
                  "List the players with over {n} {stat} per game in the {season} season.",
                  "Name everyone who averaged above {n} {stat} in {season}.",
                  "Give me the players whose {stat} per game topped {n} in {season}."),
           pref="Show all players averaging more than {n} {stat} during {season}.",
           test="Who put up better than {n} {stat} a game in {season}?",
           sql=f"SELECT p.full_name {PBS} WHERE g.season = '{{season}}' GROUP BY p.player_id "
               "HAVING AVG(b.{col}) > {n};",
           reasoning="Group player_box_scores (joined to players and games) for season '{season}' by player and keep "
                     "AVG({col}) > {n}.",
           numbers={"n": AVG_THRESHOLDS}),
    Intent("teams_over_wins", "nested", "season n",
           train=("Which teams won more than {n} regular season games in {season}?",
                  "List the teams with over {n} regular season wins in {season}.",
                  "Name the teams that topped {n} wins in the {season} regular season.",
                  "Give me every team with more than {n} wins in the {season} regular season."),
           pref="Show the teams whose {season} regular season win total exceeded {n}.",
           test="In the {season} regular season, who finished with more than {n} victories?",
           sql=f"SELECT t.full_name {TBS} WHERE g.season = '{{season}}' AND g.game_type = 'Regular Season' "
               "AND tb.won = 1 GROUP BY t.team_id HAVING COUNT(*) > {n};",
           reasoning="Group wins (won = 1) in team_box_scores joined to teams and games for the '{season}' "
                     "regular season "
                     "by team and keep COUNT(*) > {n}.",
           numbers={"n": (45, 48, 50, 52, 55)}),
    Intent("compare_players", "nested", "player1 player2 season stat",
           train=("Who had more {stat} in {season}, {player1} or {player2}?",
                  "Between {player1} and {player2}, who recorded more {stat} in the {season} season?",
                  "Which of {player1} and {player2} had the higher {stat} total in {season}?",
                  "Give me whoever had more {stat} in {season}: {player1} or {player2}."),
           pref="Tell me if {player1} or {player2} put up more {stat} during {season}.",
           test="{player1} vs {player2} in {season}: who finished with more {stat}?",
           sql=f"SELECT p.full_name {PBS} WHERE p.full_name IN ('{{player1}}', '{{player2}}') AND g.season = "
               f"'{{season}}' "
               "GROUP BY p.player_id ORDER BY SUM(b.{col}) DESC LIMIT 1;",
           reasoning="Sum {col} for '{player1}' and '{player2}' in season '{season}' (player_box_scores joined to "
                     "players "
                     "and games), order descending, keep 1."),
    Intent("roster_taller_than_avg", "nested", "team season",
           train=("Which players on the {team} in {season} were taller than the league's average height?",
                  "List the {season} {team} players who are above the average player height.",
                  "Name the {team} players of {season} taller than the average of all players.",
                  "Give me the {team}'s {season} roster members whose height beats the overall average."),
           pref="Show {team} players in {season} with height_cm above the average for all players.",
           test="Who on the {season} {team} stood taller than the typical player, on average?",
           sql="SELECT p.full_name FROM rosters r JOIN players p ON p.player_id = r.player_id "
               "JOIN teams t ON t.team_id = r.team_id WHERE t.full_name = '{team}' AND r.season = '{season}' "
               "AND p.height_cm > (SELECT AVG(height_cm) FROM players);",
           reasoning="Join rosters to players and teams for '{team}' in season '{season}' and keep height_cm above a "
                     "subquery of AVG(height_cm) over players."),
    Intent("teams_outscoring_team", "nested", "team season",
           train=("Which teams averaged more points than the {team} in {season}?",
                  "List the teams with a higher scoring average than the {team} in the {season} season.",
                  "Name the teams that outscored the {team} on average in {season}.",
                  "Give me every team whose points per game beat the {team}'s in {season}."),
           pref="Show teams averaging more points than the {team} during {season}.",
           test="In {season}, who scored more per game than the {team}?",
           sql=f"SELECT t.full_name {TBS} WHERE g.season = '{{season}}' GROUP BY t.team_id HAVING AVG(tb.points) > "
               "(SELECT AVG(tb2.points) FROM team_box_scores tb2 JOIN teams t2 ON t2.team_id = tb2.team_id "
               "JOIN games g2 ON g2.game_id = tb2.game_id WHERE t2.full_name = '{team}' AND g2.season = '{season}');",
           reasoning="Group team_box_scores by team for season '{season}' and keep AVG(points) above a subquery of the "
                     "'{team}' average in that season."),
    Intent("games_above_average", "nested", "season game_type",
           train=("How many {season} {game_type_name} games had a combined score above that season's average?",
                  "Count the {game_type_name} games in {season} whose total points beat the average total.",
                  "What number of {season} {game_type_name} games finished above the average combined score?",
                  "Give me the count of {season} {game_type_name} games scoring more than the mean game total."),
           pref="Tell me how many {game_type_name} games in {season} went over the average total points.",
           test="In the {season} {game_type_name}, how many games were higher-scoring than average?",
           sql="SELECT COUNT(*) FROM games WHERE season = '{season}' AND game_type = '{game_type}' AND home_score + "
               "away_score > (SELECT AVG(home_score + away_score) FROM games WHERE season = '{season}' AND game_type "
               "= '{game_type}');",
           reasoning="Count games in season '{season}' and game_type '{game_type}' with home_score + away_score "
                     "above a "
                     "subquery of its average over the same games."),
]
