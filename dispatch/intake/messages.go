package intake

import "fmt"

// Message keys of the conversation catalogue.
const (
	msgChooseLang  = "choose_lang"
	msgAskWhat     = "ask_what"
	msgWhatShort   = "what_short"
	msgAskWhere    = "ask_where"
	msgWhereBtn    = "where_btn"
	msgWhereShort  = "where_short"
	msgAskMedia    = "ask_media"
	msgMediaGot    = "media_got"
	msgMediaFull   = "media_full"
	msgMediaBad    = "media_bad"
	msgMediaHint   = "media_hint"
	msgBtnSkip     = "btn_skip"
	msgBtnDone     = "btn_done"
	msgSummary     = "summary"
	msgNoMedia     = "no_media"
	msgBtnSend     = "btn_send"
	msgBtnCancel   = "btn_cancel"
	msgConfirmHint = "confirm_hint"
	msgSent        = "sent"
	msgCancelled   = "cancelled"
	msgPoint       = "point"
	msgStatusLink  = "status_link"
)

// catalogue holds the citizen-facing text in Kazakh, Russian and English.
// Kazakh domain words follow the Government's concept 2024–2028
// ("хабарлама", "оқиға", "102 арнасы").
var catalogue = map[string]map[string]string{
	LangKK: {
		msgAskWhat:     "Не болды? Оқиғаны қысқаша жазыңыз.\nӨміріңізге қауіп төнсе, бірден 102 нөміріне қоңырау шалыңыз.",
		msgWhatShort:   "Оқиғаны толығырақ сипаттап беріңізші — кемінде бірнеше сөз.",
		msgAskWhere:    "Оқиға қай жерде болды? «Орынды жіберу» батырмасын басыңыз немесе мекенжайды жазыңыз (көше, үй, бағдар).",
		msgWhereBtn:    "📍 Орынды жіберу",
		msgWhereShort:  "Мекенжайды толығырақ жазыңыз немесе орынды жіберіңіз.",
		msgAskMedia:    "Фото, бейне немесе дауыстық хабарлама жібере аласыз. Қажет болмаса, «Өткізіп жіберу» батырмасын басыңыз.",
		msgMediaGot:    "Файл қабылданды (%d). Тағы жіберуге болады немесе «Дайын» батырмасын басыңыз.",
		msgMediaFull:   "Файлдар саны шегіне жетті. «Дайын» батырмасын басыңыз.",
		msgMediaBad:    "Бұл файл қабылданбады: тек көлемі шектеулі фото, бейне және аудио жіберуге болады.",
		msgMediaHint:   "Фото, бейне немесе дауыстық хабарлама жіберіңіз, не болмаса «Дайын» батырмасын басыңыз.",
		msgBtnSkip:     "Өткізіп жіберу",
		msgBtnDone:     "Дайын",
		msgSummary:     "Хабарламаңызды тексеріңіз:\n\nНе болды: %s\nҚай жерде: %s\nФайлдар: %s\n\nЖіберейік пе?",
		msgNoMedia:     "жоқ",
		msgBtnSend:     "Жіберу",
		msgBtnCancel:   "Болдырмау",
		msgConfirmHint: "«Жіберу» немесе «Болдырмау» батырмасын басыңыз.",
		msgSent:        "Рахмет! Хабарламаңыз 102 арнасында тіркелді. Қажет болса, оператор сізбен хабарласады.",
		msgCancelled:   "Хабарлама жіберілмеді. Қайта бастау үшін /start жіберіңіз.",
		msgPoint:       "картадағы нүкте (%.5f, %.5f)",
		msgStatusLink:  "Хабарламаның күйін мына сілтемеден көре аласыз: %s",
	},
	LangRU: {
		msgAskWhat:     "Что случилось? Коротко опишите, что произошло.\nЕсли есть угроза жизни — сразу звоните 102.",
		msgWhatShort:   "Опишите, пожалуйста, подробнее — хотя бы несколько слов.",
		msgAskWhere:    "Где это произошло? Нажмите «Отправить местоположение» или напишите адрес (улица, дом, ориентир).",
		msgWhereBtn:    "📍 Отправить местоположение",
		msgWhereShort:  "Напишите адрес подробнее или отправьте местоположение.",
		msgAskMedia:    "Можете прислать фото, видео или голосовое сообщение. Если не нужно — нажмите «Пропустить».",
		msgMediaGot:    "Файл получен (%d). Можно прислать ещё или нажмите «Готово».",
		msgMediaFull:   "Больше файлов прикрепить нельзя. Нажмите «Готово».",
		msgMediaBad:    "Этот файл не принят: подходят только фото, видео и аудио ограниченного размера.",
		msgMediaHint:   "Пришлите фото, видео или голосовое сообщение либо нажмите «Готово».",
		msgBtnSkip:     "Пропустить",
		msgBtnDone:     "Готово",
		msgSummary:     "Проверьте сообщение:\n\nЧто случилось: %s\nГде: %s\nФайлы: %s\n\nОтправить?",
		msgNoMedia:     "нет",
		msgBtnSend:     "Отправить",
		msgBtnCancel:   "Отменить",
		msgConfirmHint: "Нажмите «Отправить» или «Отменить».",
		msgSent:        "Спасибо! Ваше сообщение зарегистрировано в службе 102. При необходимости оператор свяжется с вами.",
		msgCancelled:   "Сообщение отменено. Чтобы начать заново, отправьте /start.",
		msgPoint:       "точка на карте (%.5f, %.5f)",
		msgStatusLink:  "Статус сообщения можно посмотреть по ссылке: %s",
	},
	LangEN: {
		msgAskWhat:     "What happened? Describe it briefly.\nIf a life is in danger, call 102 right away.",
		msgWhatShort:   "Please describe it in a few more words.",
		msgAskWhere:    "Where did it happen? Press “Send location” or type the address (street, building, landmark).",
		msgWhereBtn:    "📍 Send location",
		msgWhereShort:  "Please type a fuller address or send your location.",
		msgAskMedia:    "You can send a photo, video or voice message. If not, press “Skip”.",
		msgMediaGot:    "File received (%d). Send more or press “Done”.",
		msgMediaFull:   "No more files can be attached. Press “Done”.",
		msgMediaBad:    "This file was not accepted: only photos, video and audio of limited size.",
		msgMediaHint:   "Send a photo, video or voice message, or press “Done”.",
		msgBtnSkip:     "Skip",
		msgBtnDone:     "Done",
		msgSummary:     "Please check your report:\n\nWhat happened: %s\nWhere: %s\nFiles: %s\n\nSend it?",
		msgNoMedia:     "none",
		msgBtnSend:     "Send",
		msgBtnCancel:   "Cancel",
		msgConfirmHint: "Press “Send” or “Cancel”.",
		msgSent:        "Thank you! Your report has been registered with the 102 service. An operator will contact you if needed.",
		msgCancelled:   "Report cancelled. Send /start to begin again.",
		msgPoint:       "map point (%.5f, %.5f)",
		msgStatusLink:  "You can follow your report's status here: %s",
	},
}

// chooseLangText is shown before a language is known, in all three.
const chooseLangText = "Тілді таңдаңыз / Выберите язык / Choose your language"

var langButtons = []ChatButton{{Text: "Қазақша"}, {Text: "Русский"}, {Text: "English"}}

// T returns the catalogue text for key in lang, formatted with args. The
// HTTP layer uses T(lang, "status_link", url) after the report is stored.
func T(lang, key string, args ...any) string {
	m, ok := catalogue[lang]
	if !ok {
		m = catalogue[LangRU]
	}
	s, ok := m[key]
	if !ok {
		return key
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}
