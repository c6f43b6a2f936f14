"""SearchSpace's defaults: a space that names its genotype class reads genotypes through it."""
import pytest

from dartsviz.spaces import get_space
from dartsviz.spaces.base import SearchSpace


@pytest.mark.parametrize("name", ["cnn", "rnn", "nb201"])
def test_the_built_in_spaces_read_their_genotypes_through_their_genotype_class(name):
    space = get_space(name)
    for genotype in space.paper_genotypes.values():
        assert isinstance(genotype, space.genotype_class)
        assert space.parse_genotype(genotype.to_text()) == genotype
        assert space.genotype_from_dict(genotype.to_dict()) == genotype
        assert space.holds_genotype(genotype)
    others = [get_space(n).paper_genotypes for n in ("cnn", "rnn", "nb201") if n != name]
    assert not any(space.holds_genotype(g) for paper in others for g in paper.values())
    with pytest.raises(ValueError):
        space.parse_genotype("Genotype(nothing=1)")


def test_a_space_without_a_genotype_class_says_so():
    class Bare(SearchSpace):
        name = "bare"
    with pytest.raises(NotImplementedError, match="the bare space reads no genotypes"):
        Bare().parse_genotype("x")
    with pytest.raises(NotImplementedError, match="set genotype_class"):
        Bare().genotype_from_dict({})
    assert not Bare().holds_genotype(object())
