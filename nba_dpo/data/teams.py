"""The 30 NBA franchises as they stand today: real names, cities, conferences and divisions."""

# (team_id, abbreviation, city, nickname, state, conference, division)
FRANCHISES = [
    (1, "ATL", "Atlanta", "Hawks", "Georgia", "East", "Southeast"),
    (2, "BOS", "Boston", "Celtics", "Massachusetts", "East", "Atlantic"),
    (3, "BKN", "Brooklyn", "Nets", "New York", "East", "Atlantic"),
    (4, "CHA", "Charlotte", "Hornets", "North Carolina", "East", "Southeast"),
    (5, "CHI", "Chicago", "Bulls", "Illinois", "East", "Central"),
    (6, "CLE", "Cleveland", "Cavaliers", "Ohio", "East", "Central"),
    (7, "DAL", "Dallas", "Mavericks", "Texas", "West", "Southwest"),
    (8, "DEN", "Denver", "Nuggets", "Colorado", "West", "Northwest"),
    (9, "DET", "Detroit", "Pistons", "Michigan", "East", "Central"),
    (10, "GSW", "Golden State", "Warriors", "California", "West", "Pacific"),
    (11, "HOU", "Houston", "Rockets", "Texas", "West", "Southwest"),
    (12, "IND", "Indiana", "Pacers", "Indiana", "East", "Central"),
    (13, "LAC", "Los Angeles", "Clippers", "California", "West", "Pacific"),
    (14, "LAL", "Los Angeles", "Lakers", "California", "West", "Pacific"),
    (15, "MEM", "Memphis", "Grizzlies", "Tennessee", "West", "Southwest"),
    (16, "MIA", "Miami", "Heat", "Florida", "East", "Southeast"),
    (17, "MIL", "Milwaukee", "Bucks", "Wisconsin", "East", "Central"),
    (18, "MIN", "Minnesota", "Timberwolves", "Minnesota", "West", "Northwest"),
    (19, "NOP", "New Orleans", "Pelicans", "Louisiana", "West", "Southwest"),
    (20, "NYK", "New York", "Knicks", "New York", "East", "Atlantic"),
    (21, "OKC", "Oklahoma City", "Thunder", "Oklahoma", "West", "Northwest"),
    (22, "ORL", "Orlando", "Magic", "Florida", "East", "Southeast"),
    (23, "PHI", "Philadelphia", "76ers", "Pennsylvania", "East", "Atlantic"),
    (24, "PHX", "Phoenix", "Suns", "Arizona", "West", "Pacific"),
    (25, "POR", "Portland", "Trail Blazers", "Oregon", "West", "Northwest"),
    (26, "SAC", "Sacramento", "Kings", "California", "West", "Pacific"),
    (27, "SAS", "San Antonio", "Spurs", "Texas", "West", "Southwest"),
    (28, "TOR", "Toronto", "Raptors", "Ontario", "East", "Atlantic"),
    (29, "UTA", "Utah", "Jazz", "Utah", "West", "Northwest"),
    (30, "WAS", "Washington", "Wizards", "District of Columbia", "East", "Southeast"),
]

# Name pools for simulated players. Players are fictional: the stats are simulated, so real identities would mislead.
FIRST_NAMES = """Aaron Adrian Alec Alonzo Andre Anthony Armand Austin Bennett Blake Brandon Bruno Caleb Cameron Carlos
Cedric Chris Cole Colin Damian Dante Darius Davion Dejan Derrick Devin Dmitri Dominic Donovan Dorian Elijah Emeka
Eric Evan Felix Franz Gabriel Garrett Gideon Grant Hakeem Harrison Isaiah Ivan Jabari Jalen Jamal Jaren Jarrett
Javier Jaylen Jerome Joel Jonah Jordan Josh Julian Julius Kai Kamal Keegan Keldon Kendrick Khalid Kobe Kyle Lamar
Lance Landry Lorenzo Luka Malik Marcus Mario Markus Mason Mateo Max Micah Miles Mikal Moses Myles Nassir Nate Nikola
Obi Omar Onyeka Oscar Otto Pascal Quentin Rafael Reggie Rico Rudy Russell Santiago Scottie Sekou Shai Simone Stefan
Terrence Theo Tobias Trey Tristan Tyrese Victor Vince Walker Wendell Xavier Yusuf Zach Zion""".split()

LAST_NAMES = """Abbott Adebayo Alvarez Anderson Armstrong Bailey Barnes Bell Bennett Bogdan Brooks Bryant Caldwell
Campbell Carter Castillo Chambers Clarke Coleman Cooper Crawford Cunningham Daniels Davidson Diallo Dixon Dosunmu
Duarte Edwards Ellis Evans Fischer Fleming Fofana Ford Fournier Garland Garrison Gibson Gordon Graham Grant Green
Hamilton Harper Hayes Henderson Holiday Horvat Howard Hughes Ibeh Ingram Jackson Jensen Johnson Jovic Kaminski
Keller Kennedy Kovacs Kuznetsov Lambert Lawson Lindqvist Lopez Lowry Maddox Marshall Martin Mensah Mitchell Moreno
Morris Murray Nance Navarro Ndiaye Nelson Novak Okafor Okeke Oliver Olsen Owens Palmer Parker Patterson Payne
Perez Petrovic Porter Powell Price Quinn Ramos Reed Reyes Richards Rivera Robinson Rossi Russell Sabonis Sanders
Schmidt Sexton Simmons Sorensen Stewart Sullivan Thompson Torres Turner Vasquez Wagner Walker Wallace Warren
Watson Webb Wells Whitmore Wilkins Williams Young Zeller""".split()

# Birth countries with rough weights: mostly US, then the countries that send the most players.
COUNTRIES = [("USA", 70), ("Canada", 6), ("France", 4), ("Serbia", 2), ("Australia", 3), ("Germany", 2),
             ("Nigeria", 2), ("Spain", 2), ("Greece", 1), ("Slovenia", 1), ("Lithuania", 1), ("Croatia", 1),
             ("Cameroon", 1), ("Turkey", 1), ("Brazil", 1), ("Japan", 1)]
