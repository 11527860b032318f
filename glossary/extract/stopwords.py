"""English word lists for the statistical keyphrase extractor.

``STOPWORDS`` end a candidate phrase: function words, pronouns, auxiliary and
common verbs in all their forms, adverbs, vague adjectives, numbers in words,
and the fillers of spoken talks. ``GENERIC`` nouns may stand inside a term
("language model", "training data") but are never a term on their own.
All lower case; the extractor compares lower-cased tokens.
"""

from __future__ import annotations

_FUNCTION = """
a about above across after afterwards again against all almost alone along already also
although always am among amongst an and another any anybody anyhow anyone anything anyway
anyways anywhere are aren't around as at be because been before beforehand behind being
below beside besides between beyond both but by can can't cannot could couldn't did didn't
do does doesn't doing don't done down during each either else elsewhere enough etc even
ever every everybody everyone everything everywhere except few for former formerly from
further furthermore had hadn't has hasn't have haven't having he he'd he'll he's hence her
here here's hereby herein hers herself him himself his how however i i'd i'll i'm i've ie
if in inside instead into is isn't it it's its itself just least less let let's lot lots
many may maybe me meanwhile might mine more moreover most mostly much must mustn't my
myself namely neither never nevertheless next no nobody none nor not nothing now nowhere of
off often on once one ones only onto or other others otherwise ought our ours ourselves out
outside over own per perhaps please quite rather re really same shall shan't she she'd
she'll she's should shouldn't since so some somebody somehow someone something sometime
sometimes somewhat somewhere still such than that that's the their theirs them themselves
then thence there there's thereafter thereby therefore therein thereupon these they they'd
they'll they're they've this those though through throughout thru thus to together too
toward towards under unless until up upon us very via vs was wasn't we we'd we'll we're
we've were weren't what what's whatever when whence whenever where where's whereas whereby
wherein whether which while whither who who's whoever whole whom whose why will with within
without won't would wouldn't yet you you'd you'll you're you've your yours yourself
yourselves e.g i.e cf et al viz eg
"""

# Verbs a talk or paper uses around its terms, with their inflections.
_VERBS = """
achieve achieved achieves achieving add added adding adds address addressed addresses
addressing allow allowed allowing allows apply applied applies applying argue argued
argues ask asked asking asks assume assumed assumes assuming become becomes becoming
began begin begins believe believed believes bring brings brought build builds built call
called calling calls came can choose chose chosen come comes coming compare compared
compares comparing consider considered considering considers contain contained containing
contains create created creates creating decide decided define defined defines defining
demonstrate demonstrated demonstrates depend depended depending depends describe described
describes describing design designed designing develop developed developing develops did
discuss discussed discusses do does doing done evaluate evaluated evaluates evaluating
explain explained explaining explains explore explored explores exploring find finding finds
focus focused focuses focusing follow followed following follows found gave get gets getting
give given gives giving go goes going gone got gotten guess happen happened happens help
helped helping helps hope include included includes including introduce introduced
introduces introducing involve involved involves keep keeps kept know knowing known knows
leave led let lets like liked look looked looking looks made make makes making meaning
means meant need needed needing needs note noted notice noticed observe observed observes
obtain obtained obtains obtaining perform performed performing performs present presented
presenting presents propose proposed proposes proposing provide provided provides providing
put puts reach reached reaches reaching refer referred refers remain remains report reported
reports require required requires requiring said say saying says see seeing seem
seemed seems seen show showed showing shown shows start started starting starts
 studied suggest suggested suggests take taken takes taking talk talked talking talks
tell tells tend tends think thinking thinks thought told took tried tries try trying turn
turned turns understand understood use used uses using want wanted wanting wants was went
work worked working works write writes writing written wrote yield yields
"""

# Adverbs, vague adjectives and quantities that open or close phrases but are never terms.
_MODIFIERS = """
able actual actually based additional additionally almost already alternatively approximately
available basic basically best better certain certainly clear clearly common commonly
completely considerable considerably current currently different differently difficult
directly due easily easy effective effectively entire entirely especially essentially
exactly existing extremely fairly far final finally first following former fully further
general generally given good great greater greatly hard highly
important importantly interesting interestingly last late later
latter least less likely little main mainly major mere merely
more most much near nearly necessary necessarily new newly nice non normal normally novel
obvious obviously old only original originally other overall particular particularly
possible possibly potential potentially present previous previously primarily prior
probably proper properly quick quickly rather real recent recently related relative
relatively respective respectively right roughly second several significant significantly
similar similarly simple simply single slightly so specific specifically
strong strongly successful successfully such sure third true truly typical
typically ultimately unfortunately unique useful usual usually various vast well whole wide
widely worse worst wrong
zero one two three four five six seven eight nine ten eleven twelve twenty thirty forty
thirteen fourteen fifteen sixteen seventeen eighteen nineteen fifty sixty seventy eighty
ninety hundred thousand million billion half once twice
"""

# Spoken-language fillers (talk transcripts, speaker notes).
_SPOKEN = """
ah alright bye gonna gotta hello hey hi huh kinda mm oh ok okay right so sort thank thanks
uh uhm um wanna welcome yeah yes
"""

# Words that occur in every paper or talk: part of terms ("large language model",
# "training data"), never terms on their own; a phrase of these words only is no term.
_GENERIC = """
big deep high large long low short small language languages text
ability abstract accuracy addition advantage amount analysis answer appendix approach area
aspect attempt author authors average background bit case cases category challenge change
chapter choice claim class code column comparison conclusion condition context contribution
course data dataset datasets degree detail details difference direction discussion domain
effect effort end evaluation evidence example examples experiment experiments extent fact
factor feature features field figure focus form framework future goal group idea impact
improvement information input instance interest introduction issue item kind level limitation
line list lot manner matter measure method methods metric model models name need notion
number observation order output overview page paper part percent performance person
perspective piece place point position problem problems procedure process project property
purpose question questions range rate reason research result results role sample scale
score section sense sentence series set setting settings side size slide solution source space
stage state step strategy structure study subset success summary system systems table talk
target task tasks technique term terms thing things time times tool top topic total
type types unit use user value values variety version view way ways word words work year
years
"""


def _words(*groups: str) -> frozenset[str]:
    return frozenset(w for group in groups for w in group.split())


STOPWORDS = _words(_FUNCTION, _VERBS, _MODIFIERS, _SPOKEN)
GENERIC = _words(_GENERIC) - STOPWORDS
