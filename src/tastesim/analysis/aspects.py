"""Aspect lexicons used by the offline analyser: general reasons people give for liking or disliking items.

Each aspect is ``(reason text, keywords, categories it is typical of)``. The analyser ranks aspects for an
item by embedding similarity between the aspect text and the item's text, plus a bonus when the item has
one of the aspect's categories. Categories are MovieLens genres; for other catalogs the bonus simply never
applies and similarity alone decides.
"""

from __future__ import annotations

Aspect = tuple[str, tuple[str, ...], tuple[str, ...]]

LIKE_ASPECTS: tuple[Aspect, ...] = (
    ("thrilling action sequences", ("action", "thrilling"), ("Action", "Adventure")),
    ("spectacular stunts and chases", ("stunt", "chase"), ("Action",)),
    ("sense of adventure", ("adventure", "journey"), ("Adventure", "Fantasy")),
    ("charming animation", ("animation", "charming"), ("Animation",)),
    ("fun for the whole family", ("family", "fun"), ("Children's", "Animation")),
    ("laugh-out-loud humor", ("humor", "funny"), ("Comedy",)),
    ("witty dialogue", ("witty", "dialogue"), ("Comedy", "Romance")),
    ("clever crime plot", ("crime", "clever"), ("Crime", "Film-Noir")),
    ("gripping suspense", ("suspense", "gripping"), ("Thriller", "Mystery")),
    ("intriguing mystery", ("mystery", "intriguing"), ("Mystery", "Film-Noir")),
    ("insightful real-life subject", ("documentary", "insightful"), ("Documentary",)),
    ("powerful emotional drama", ("emotional", "powerful"), ("Drama",)),
    ("strong performances", ("performance", "acting"), ("Drama",)),
    ("magical fantasy world", ("fantasy", "magical"), ("Fantasy",)),
    ("stylish noir atmosphere", ("noir", "atmosphere"), ("Film-Noir",)),
    ("genuinely scary horror", ("scary", "horror"), ("Horror",)),
    ("memorable songs", ("song", "music"), ("Musical",)),
    ("touching love story", ("romance", "love"), ("Romance",)),
    ("imaginative science fiction", ("sci-fi", "imaginative"), ("Sci-Fi",)),
    ("impressive special effects", ("effect", "visual"), ("Sci-Fi", "Action")),
    ("moving war story", ("war", "moving"), ("War",)),
    ("classic western spirit", ("western", "frontier"), ("Western",)),
    ("heartwarming friendship", ("friendship", "heartwarming"), ()),
    ("inspiring true story", ("inspiring", "true"), ("Drama", "Documentary")),
    ("dark comedy", ("dark", "satire"), ("Comedy", "Crime")),
    ("clever plot twists", ("twist", "clever"), ("Thriller", "Mystery")),
    ("beautiful cinematography", ("cinematography", "beautiful"), ("Drama", "Romance")),
    ("historical setting", ("historical", "period"), ("Drama", "War")),
)

DISLIKE_ASPECTS: tuple[Aspect, ...] = (
    ("too much graphic violence", ("violence", "gore"), ("Action", "Crime", "Horror", "War")),
    ("slow pacing", ("slow", "pacing"), ("Drama", "Documentary")),
    ("bleak and depressing tone", ("bleak", "depressing"), ("Drama", "War")),
    ("predictable plot", ("predictable", "cliche"), ("Romance", "Comedy", "Action")),
    ("childish humor", ("childish", "silly"), ("Children's", "Animation", "Comedy")),
    ("overly sentimental", ("sentimental", "melodrama"), ("Romance", "Drama")),
    ("dated special effects", ("dated", "effect"), ("Sci-Fi", "Fantasy", "Horror")),
    ("confusing plot", ("confusing", "convoluted"), ("Mystery", "Thriller", "Sci-Fi")),
    ("crude jokes", ("crude", "vulgar"), ("Comedy",)),
    ("too frightening", ("frightening", "scary"), ("Horror", "Thriller")),
    ("constant singing", ("singing", "musical"), ("Musical",)),
    ("mushy romance", ("mushy", "romance"), ("Romance",)),
    ("brutal war scenes", ("brutal", "war"), ("War",)),
    ("dry and lecturing", ("dry", "lecturing"), ("Documentary",)),
    ("cartoonish characters", ("cartoonish", "shallow"), ("Animation", "Children's")),
    ("far-fetched fantasy", ("far-fetched", "implausible"), ("Fantasy", "Sci-Fi")),
    ("old-fashioned style", ("old-fashioned", "dated"), ("Western", "Film-Noir", "Musical")),
    ("mindless action", ("mindless", "explosion"), ("Action",)),
    ("too long", ("long", "overlong"), ("Drama", "War", "Adventure")),
    ("disturbing subject matter", ("disturbing", "dark"), ("Crime", "Horror", "Drama")),
    ("weak acting", ("acting", "wooden"), ()),
    ("formulaic sequel", ("sequel", "formulaic"), ()),
)
