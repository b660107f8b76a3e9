"""The linear baseline a text model must beat: hashed word 1-2-grams and character 2-4-grams,
logistic regression, trained on the same split, with no footprint limit.

It is what a practitioner tries first on short intents, and it is strong on templates: a
searched projection model that does not beat it has no reason to exist.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tinyeff.data.dataset import Dataset

HASH_FEATURES = 2**18


@dataclasses.dataclass(frozen=True)
class Baseline:
    name: str
    test_accuracy: float
    parameters: int  # float weights, for scale: the baseline has no budget
    test_samples: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def linear_text_baseline(data: Dataset, seed: int = 0) -> Baseline:
    """Train the baseline on DATA's training split and measure it on its test split."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression

    words = HashingVectorizer(analyzer="word", ngram_range=(1, 2), n_features=HASH_FEATURES, alternate_sign=False,
                              norm="l2")
    chars = HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=HASH_FEATURES, alternate_sign=False,
                              norm="l2")

    def features(texts: np.ndarray):
        texts = [str(t) for t in texts]
        return hstack([words.transform(texts), chars.transform(texts)]).tocsr()

    clf = LogisticRegression(C=10.0, max_iter=2000, random_state=seed)
    clf.fit(features(data.x_train), data.y_train)
    accuracy = float((clf.predict(features(data.x_test)) == data.y_test).mean())
    used = int(np.count_nonzero(np.abs(clf.coef_).sum(axis=0)))
    return Baseline("hashed word 1-2 + char 2-4 n-grams, logistic regression", accuracy,
                    used * clf.coef_.shape[0] + clf.coef_.shape[0], len(data.y_test))
