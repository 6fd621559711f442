"""Vocabularies of the synthetic product families.

Each family has its own brands, adjectives, nouns and qualifiers, so that a language model reading
only the titles can tell the families apart. Words are ``|``-separated to keep the table compact.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """One semantic product family: where it sits in the catalogue and the words of its titles."""

    name: str
    main_category: str
    subcategory: str
    brands: tuple[str, ...]
    adjectives: tuple[str, ...]
    nouns: tuple[str, ...]
    qualifiers: tuple[str, ...]


def _family(name: str, main: str, sub: str, brands: str, adj: str, nouns: str, qual: str) -> Family:
    split = lambda s: tuple(w.strip() for w in s.split("|"))  # noqa: E731
    return Family(name, main, sub, split(brands), split(adj), split(nouns), split(qual))


FAMILIES: tuple[Family, ...] = (
    _family("espresso", "Home & Kitchen", "Coffee, Tea & Espresso",
            "Baristo|Crema Bella|Ristretto Works|Portafino",
            "Stainless|Calibrated|Precision|Italian|Burr|Barista",
            "Espresso Tamper|Milk Frothing Pitcher|Conical Burr Grinder|Portafilter Basket|"
            "Knock Box|Espresso Machine|Coffee Scale|Dosing Funnel",
            "58mm|for Latte Art|with Timer|Double Shot|for Home Baristas"),
    _family("trail_running", "Sports & Outdoors", "Trail Running",
            "Ridgeline|Summit Stride|TrailFox|Scree Runner",
            "Lightweight|Waterproof|Grippy|Breathable|Cushioned|Rugged",
            "Trail Running Shoes|Hydration Vest|Running Gaiters|Soft Flask|Headlamp|"
            "Running Poles|Compression Socks|Trail Shorts",
            "for Ultramarathons|Mens|Womens|with Rock Plate|500ml"),
    _family("scifi", "Books", "Science Fiction",
            "Nebula House|Orbit Press|Starward Books|Quasar",
            "Interstellar|Galactic|Dystopian|Cyberpunk|Post-Apocalyptic|Time-Travel",
            "Space Opera Novel|Starship Saga|Alien Contact Thriller|Android Chronicles|"
            "Colony Epic|Wormhole Mystery|Robot Uprising Novel|Mars Trilogy",
            "Book One|Paperback|Hardcover Edition|Complete Series|Collectors Edition"),
    _family("yoga", "Sports & Outdoors", "Yoga",
            "Lotus Flow|ZenMat|Namaste Studio|Asana Lab",
            "Non-Slip|Eco-Friendly|Extra Thick|Cork|Organic Cotton|Foldable",
            "Yoga Mat|Yoga Block|Meditation Cushion|Yoga Strap|Yoga Wheel|Bolster Pillow|"
            "Mat Towel|Yoga Blanket",
            "6mm|Set of 2|for Hot Yoga|with Carry Strap|for Beginners"),
    _family("baking", "Home & Kitchen", "Bakeware",
            "Golden Crumb|Flour & Hearth|Sift Co|Proofing Room",
            "Nonstick|Silicone|Carbon Steel|Fluted|Heavy-Duty|Perforated",
            "Bundt Pan|Sourdough Proofing Basket|Pastry Mat|Bench Scraper|Loaf Pan|"
            "Springform Pan|Dough Whisk|Cooling Rack",
            "9 Inch|for Bread Baking|Set of 3|with Liner|Professional Grade"),
    _family("camping", "Sports & Outdoors", "Camping & Hiking",
            "Basecamp|Pinecrest|Nomad Outfitters|Ember Peak",
            "Ultralight|Insulated|Four-Season|Packable|Windproof|Rechargeable",
            "Backpacking Tent|Sleeping Bag|Camp Stove|Sleeping Pad|Camping Lantern|"
            "Water Filter|Camp Chair|Dry Bag",
            "2 Person|20 Degree|for Backpacking|with Carry Sack|Compact"),
    _family("aquarium", "Pet Supplies", "Fish & Aquatic Pets",
            "ReefLine|AquaVista|Coral Cove|Tetra Bay",
            "Submersible|Adjustable|Full Spectrum|Silent|Planted|Saltwater",
            "Aquarium Heater|Canister Filter|LED Aquarium Light|Air Pump|Gravel Vacuum|"
            "Protein Skimmer|Aquarium Substrate|Water Conditioner",
            "for 20 Gallon Tanks|100W|Freshwater|with Controller|Nano"),
    _family("gardening", "Patio, Lawn & Garden", "Gardening",
            "Greenthumb|Rootwise|Bloom & Bough|Terra Verde",
            "Ergonomic|Galvanized|Raised|Self-Watering|Heirloom|Organic",
            "Pruning Shears|Garden Trowel|Raised Garden Bed|Seed Starter Kit|Compost Bin|"
            "Watering Can|Garden Kneeler|Tomato Cage",
            "for Vegetables|Set of 4|Cedar|with Drainage|Heavy Gauge"),
    _family("guitar", "Musical Instruments", "Guitars",
            "Fretmaster|Tonewood|Six String Co|Capo King",
            "Acoustic|Phosphor Bronze|Chromatic|Padded|Nickel Wound|Vintage",
            "Guitar Strings|Clip-On Tuner|Guitar Capo|Gig Bag|Guitar Strap|Pick Set|"
            "Effects Pedal|Guitar Stand",
            "Light Gauge|for Electric Guitar|12 Pack|with Pick Holder|Overdrive"),
    _family("skincare", "Beauty & Personal Care", "Skin Care",
            "Dewdrop|Lumiere Skin|Pure Botanic|Velvet Bloom",
            "Hydrating|Vitamin C|Fragrance-Free|Hyaluronic|Gentle|Retinol",
            "Face Serum|Night Cream|Gel Cleanser|Sheet Mask|Eye Cream|Facial Toner|"
            "Sunscreen Lotion|Lip Balm",
            "SPF 50|for Sensitive Skin|1 fl oz|Travel Size|with Niacinamide"),
    _family("board_games", "Toys & Games", "Board Games",
            "Meeple Forge|Dice Tower Games|Tabletop Guild|Kingdomcraft",
            "Cooperative|Strategy|Deck-Building|Family|Legacy|Fantasy",
            "Board Game|Card Game|Dice Game|Expansion Pack|Miniatures Set|Puzzle Game|"
            "Party Game|Campaign Box",
            "for 2-4 Players|Ages 10+|Deluxe Edition|Second Edition|Travel Edition"),
    _family("photography", "Electronics", "Camera & Photo",
            "Aperture Labs|ShutterPro|Lumen Optics|FocalPoint",
            "Carbon Fiber|Mirrorless|Wide-Angle|Weatherproof|Variable ND|Telephoto",
            "Camera Tripod|Prime Lens|Lens Filter|Camera Backpack|Memory Card|Camera Flash|"
            "Lens Cleaning Kit|Remote Shutter",
            "for Sony E-Mount|77mm|50mm f1.8|128GB|with Ball Head"),
    _family("cycling", "Sports & Outdoors", "Cycling",
            "Velo Craft|Chainring|Spokewise|Peloton Gear",
            "Aero|Tubeless|Carbon|Clipless|Padded|High-Visibility",
            "Bike Helmet|Cycling Jersey|Bike Light Set|Bib Shorts|Saddle Bag|Floor Pump|"
            "Bike Computer|Chain Lube",
            "for Road Bikes|USB Rechargeable|Mens|with MIPS|700c"),
    _family("knitting", "Arts, Crafts & Sewing", "Knitting & Crochet",
            "Woolly Nest|Purl & Loop|Yarn Harbor|Stitchcraft",
            "Merino|Chunky|Bamboo|Hand-Dyed|Ergonomic|Alpaca",
            "Knitting Needles|Yarn Bundle|Crochet Hook Set|Stitch Markers|Yarn Bowl|"
            "Blocking Mats|Row Counter|Knitting Pattern Book",
            "Size 8|Set of 12|Worsted Weight|for Beginners|Circular"),
    _family("tea", "Grocery & Gourmet Food", "Tea",
            "Leaf & Kettle|Jade Garden|Steeped|Chai Caravan",
            "Loose Leaf|Organic|Ceremonial Grade|Cold Brew|Smoky|Floral",
            "Matcha Powder|Oolong Tea|Earl Grey Tea|Tea Infuser|Chai Blend|Sencha Green Tea|"
            "Rooibos Tea|Cast Iron Teapot",
            "100g Tin|50 Tea Bags|from Japan|Caffeine-Free|Gift Set"),
    _family("woodworking", "Tools & Home Improvement", "Woodworking",
            "Oak & Iron|Dovetail Works|Grainline|Joinery Co",
            "Hardened|Japanese|Bevel-Edge|Low-Angle|Quick-Release|Precision",
            "Chisel Set|Block Plane|Pull Saw|Marking Gauge|Bar Clamps|Sharpening Stone|"
            "Combination Square|Workbench Vise",
            "4 Piece|1000/6000 Grit|12 Inch|with Wooden Case|for Fine Joinery"),
)
