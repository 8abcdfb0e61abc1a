"""trainers.rewards.ended_with_eos: the episodes a reward model reads end in EOS, as the ones it was trained on."""

import torch

from trainers.rewards import ended_with_eos

EOS, PAD = 2, 0


def test_a_cut_response_gets_eos_appended_and_an_ended_one_a_masked_pad():
    # prompt of 2 (left-padded in row 1), responses of 3: row 0 cut without EOS, row 1 ended at its 2nd token
    seq = torch.tensor([[5, 6, 7, 8, 9], [PAD, 6, 7, EOS, PAD]])
    attn = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 1, 0]])
    s, a = ended_with_eos(seq, attn, 2, EOS, PAD)
    assert s.tolist() == [[5, 6, 7, 8, 9, EOS], [PAD, 6, 7, EOS, PAD, PAD]]
    assert a.tolist() == [[1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0]]


def test_an_eos_in_the_prompt_or_in_masked_padding_does_not_count_as_an_ended_response():
    seq = torch.tensor([[EOS, 6, 7, 8], [5, 6, 7, EOS]])
    attn = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])  # row 1: the EOS id sits in a masked position
    s, a = ended_with_eos(seq, attn, 1, EOS, PAD)
    assert s[:, -1].tolist() == [EOS, EOS] and a[:, -1].tolist() == [1, 1]
