"""Evaluation metrics (pure functions, no model code).

Units: classification, sequence labelling, retrieval and zero-shot metrics are fractions in
[0, 1]; SQuAD, VQA and sacrebleu metrics are percentages as their official tools print them;
caption BLEU is in [0, 1] and CIDEr-D on pycocoevalcap's scale."""
from lingvis.eval.captioning import bleu, caption_scores, caption_tokenize, cider_d
from lingvis.eval.classification import (
    PRF,
    accuracy,
    classification_report,
    confusion_matrix,
    precision_recall_f1,
)
from lingvis.eval.perplexity import (
    NLLAccumulator,
    bits_per_byte,
    bits_per_token,
    mean_nll,
    perplexity,
    perplexity_from_mean_nll,
)
from lingvis.eval.retrieval import retrieval_ranks, retrieval_recall, zero_shot_accuracy
from lingvis.eval.seqeval import EntityScores, entity_scores, get_entities
from lingvis.eval.squad import SquadResult, exact_match, normalize_answer, squad_evaluate, token_f1
from lingvis.eval.translation import TranslationScore, choose_tokenizer, corpus_bleu, corpus_chrf
from lingvis.eval.vqa import VQAResult, vqa_evaluate, vqa_question_accuracy
from lingvis.eval.vqa_normalize import normalize_vqa_answer

__all__ = [
    "PRF", "accuracy", "classification_report", "confusion_matrix", "precision_recall_f1",
    "EntityScores", "entity_scores", "get_entities",
    "SquadResult", "exact_match", "normalize_answer", "squad_evaluate", "token_f1",
    "VQAResult", "normalize_vqa_answer", "vqa_evaluate", "vqa_question_accuracy",
    "bleu", "caption_scores", "caption_tokenize", "cider_d",
    "TranslationScore", "choose_tokenizer", "corpus_bleu", "corpus_chrf",
    "retrieval_ranks", "retrieval_recall", "zero_shot_accuracy",
    "NLLAccumulator", "bits_per_byte", "bits_per_token", "mean_nll", "perplexity", "perplexity_from_mean_nll",
]
