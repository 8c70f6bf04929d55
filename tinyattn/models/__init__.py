"""Whole models built from ``tinyattn.nn`` layers for a task (applications, not layers).

    from tinyattn.models import AttentionSeq2Seq
    model = AttentionSeq2Seq(src_vocab, tgt_vocab, embedding_dim=16, hidden_size=32)
"""
from .seq2seq import AttentionDecoder, AttentionSeq2Seq, TransformerSeq2Seq

__all__ = ["AttentionDecoder", "AttentionSeq2Seq", "TransformerSeq2Seq"]

from .decoder_only import DecoderOnlyTransformer  # noqa: E402

__all__ += ["DecoderOnlyTransformer"]

from .generation import beam_search, filter_logits, generate, sample_next, sequence_log_prob  # noqa: E402

__all__ += ["beam_search", "filter_logits", "generate", "sample_next", "sequence_log_prob"]
